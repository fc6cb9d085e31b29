package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// procSample is a process's CPU time (user+system, in clock ticks) and RSS.
type procSample struct {
	at     time.Time
	ticks  uint64
	rssKiB uint64
}

const clkTck = 100 // USER_HZ on Linux

func sampleProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	s.ticks = ut + stime
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(st), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			s.rssKiB, _ = strconv.ParseUint(f[1], 10, 64)
		}
	}
	return s, nil
}

// cpuPct is the CPU used between two samples, in percent of one core.
func cpuPct(a, b procSample) float64 {
	return float64(b.ticks-a.ticks) / clkTck / b.at.Sub(a.at).Seconds() * 100
}

type footRow struct {
	sys      string
	jobs     string
	cpu, rss rep // per node: mean over the 3 nodes, MiB
	cpuMax   rep
	redisCPU rep
	redisRSS rep
}

// footprint starts three replicas with jobs, waits settle, then measures
// every replica's CPU over window and its RSS at the end.
func footprint(sys, dir, jobs string, settle, window time.Duration, redis *redisServer) (cpu, cpuMax, rss, rcpu, rrss float64, err error) {
	addr := ""
	if redis != nil {
		addr = redis.addr
	}
	cs, err := startReplicas(sys, dir, jobs, 0, nil, addr, "-print-runs=false")
	if err != nil {
		return
	}
	defer stopAll(cs)
	time.Sleep(settle)
	var a, b []procSample
	pids := []int{}
	for _, c := range cs {
		pids = append(pids, c.pid())
	}
	if redis != nil {
		pids = append(pids, redis.pid())
	}
	for _, p := range pids {
		s, e := sampleProc(p)
		if e != nil {
			err = e
			return
		}
		a = append(a, s)
	}
	time.Sleep(window)
	for _, p := range pids {
		s, e := sampleProc(p)
		if e != nil {
			err = e
			return
		}
		b = append(b, s)
	}
	for _, c := range cs {
		if !c.alive() {
			err = fmt.Errorf("%s exited during the footprint window:\n%s", c.name, tail(c.logPath))
			return
		}
	}
	for i := range cs {
		p := cpuPct(a[i], b[i])
		cpu += p / 3
		cpuMax = max(cpuMax, p)
		rss += float64(b[i].rssKiB) / 1024 / 3
	}
	if redis != nil {
		rcpu = cpuPct(a[3], b[3])
		rrss = float64(b[3].rssKiB) / 1024
	}
	return
}

func runS4(r *report) error {
	var errs []string
	loads := []struct{ label, jobs string }{
		{"100 jobs, 1 h interval (idle)", "idle:1h:100"},
		{"100 jobs, 1 s interval", "busy:1s:100"},
	}
	if r.st.mode == "quick" {
		loads = loads[:1]
	}
	for _, load := range loads {
		for _, sys := range []string{sysInterlock, sysEtcdElect, sysGointerlock} {
			row := footRow{sys: sys, jobs: load.label}
			for i := 0; i < r.st.s4Reps; i++ {
				dir := filepath.Join(r.tmp, fmt.Sprintf("s4-%s-%s-%d", sys2file(sys), load.jobs[:4], i))
				var rs *redisServer
				if sys == sysGointerlock {
					var err error
					if rs, err = startRedis(filepath.Join(dir, "redis"), false); err != nil {
						errs = append(errs, err.Error())
						continue
					}
				}
				cpu, cpuMax, rss, rcpu, rrss, err := footprint(sys, dir, load.jobs, r.st.s4Settle, r.st.s4Window, rs)
				if rs != nil {
					rs.stop()
				}
				if err != nil {
					errs = append(errs, fmt.Sprintf("%s: %v", sys, err))
					continue
				}
				row.cpu = append(row.cpu, cpu)
				row.cpuMax = append(row.cpuMax, cpuMax)
				row.rss = append(row.rss, rss)
				if rs != nil {
					row.redisCPU = append(row.redisCPU, rcpu)
					row.redisRSS = append(row.redisRSS, rrss)
				}
			}
			r.s4 = append(r.s4, row)
		}
	}
	var parts []string
	for _, row := range r.s4 {
		if strings.Contains(row.jobs, "idle") {
			parts = append(parts, fmt.Sprintf("%s %s%% CPU %s MiB", short(row.sys), num(row.cpu.median()), num(row.rss.median())))
		}
	}
	progress("S4 footprint per node, idle (%s window × %d): %s", r.st.s4Window, r.st.s4Reps, strings.Join(parts, "; "))
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}
