package main

import (
	"errors"
	"fmt"
	"math"
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
	// rssAbove is rss less the floor measured in the same repetition.
	rssAbove rep
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
	args := []string{"-print-runs=false", "-report-leader=false"}
	if sys == sysEtcdElectEq {
		sys = sysEtcdElect
		args = append(args, "-etcd-equal-timing")
	}
	cs, err := startReplicas(sys, dir, jobs, 0, nil, addr, args...)
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

// floorSample measures the bench binary itself, started as a replica is
// but doing nothing (role "floor"): its RSS is what every replica process
// pays for sharing this one binary with every system's client libraries,
// before any coordination code runs.
func floorSample(dir string, settle, window time.Duration) (cpu, rss float64, err error) {
	c, err := startChild(dir, "floor", "floor", nil)
	if err != nil {
		return 0, 0, err
	}
	defer stopAll([]*child{c})
	if err := c.waitReady(30 * time.Second); err != nil {
		return 0, 0, err
	}
	time.Sleep(settle)
	a, err := sampleProc(c.pid())
	if err != nil {
		return 0, 0, err
	}
	time.Sleep(window)
	b, err := sampleProc(c.pid())
	if err != nil {
		return 0, 0, err
	}
	return cpuPct(a, b), float64(b.rssKiB) / 1024, nil
}

func runS4(r *report) error {
	var errs []string
	loads := []struct{ label, jobs string }{
		{"100 jobs, 1 h interval (idle)", "idle:1h:100"},
		{"100 jobs, 1 s interval", "busy:1s:100"},
	}
	if r.st.mode == "quick" {
		loads = loads[:1] // bench-quick stays under five minutes
	}
	systems := []string{sysInterlock, sysEtcdElect, sysEtcdElectEq, sysGointerlock}
	rows := map[string]*footRow{}
	var order []string
	for _, load := range loads {
		for _, sys := range systems {
			k := load.jobs + sys
			rows[k] = &footRow{sys: sys, jobs: load.label}
			order = append(order, k)
		}
	}
	// Repetitions outside, systems inside in a rotating order, so a busy
	// spell of the shared machine falls on every system alike; the floor
	// is measured in every repetition.
	for i := 0; i < r.st.s4Reps; i++ {
		fcpu, frss, err := floorSample(filepath.Join(r.tmp, fmt.Sprintf("s4-floor-%d", i)), r.st.s4Settle, r.st.s4Window)
		if err != nil {
			errs = append(errs, fmt.Sprintf("floor: %v", err))
			frss = math.NaN()
		} else {
			r.s4Floor.cpu = append(r.s4Floor.cpu, fcpu)
			r.s4Floor.rss = append(r.s4Floor.rss, frss)
		}
		for _, load := range loads {
			for j := range systems {
				sys := systems[(i+j)%len(systems)]
				row := rows[load.jobs+sys]
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
				row.rssAbove = append(row.rssAbove, rss-frss)
				if rs != nil {
					row.redisCPU = append(row.redisCPU, rcpu)
					row.redisRSS = append(row.redisRSS, rrss)
				}
			}
		}
	}
	for _, k := range order {
		r.s4 = append(r.s4, *rows[k])
	}
	var parts []string
	for _, row := range r.s4 {
		parts = append(parts, fmt.Sprintf("%s %s: %s%% CPU, %s MiB above the floor", short(row.sys), row.jobs, num(row.cpu.median()), num(row.rssAbove.median())))
	}
	progress("S4 footprint per node (%s window × %d; floor %s MiB): %s", r.st.s4Window, r.st.s4Reps, num(r.s4Floor.rss.median()), strings.Join(parts, "; "))
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}
