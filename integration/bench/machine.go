package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

type machineInfo struct {
	nproc                            int
	cpu, kernel, goVersion, fs, date string
	redis                            string
	loadBefore, loadAfter            string
	library                          string
	modules                          map[string]string
}

func describeMachine(dir string) machineInfo {
	m := machineInfo{nproc: runtime.NumCPU(), goVersion: runtime.Version(), date: time.Now().UTC().Format("2006-01-02 15:04 MST"), modules: map[string]string{}}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				m.cpu = strings.TrimSpace(line[strings.IndexByte(line, ':')+1:])
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("df", "-T", dir).Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if f := strings.Fields(lines[len(lines)-1]); len(f) >= 2 {
			m.fs = fmt.Sprintf("%s (%s, mounted on %s)", f[0], f[1], f[len(f)-1])
		}
	}
	m.redis = redisVersion()
	m.loadBefore = loadAvg()
	m.library = libraryVersion()
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			v := d.Version
			if d.Replace != nil {
				v = d.Replace.Version
				if v == "" {
					v = "local (" + d.Replace.Path + ")"
				}
			}
			m.modules[d.Path] = v
		}
	}
	return m
}

func (m machineInfo) short() string {
	return fmt.Sprintf("%d CPUs (%s), Linux %s, %s", m.nproc, m.cpu, m.kernel, m.goVersion)
}

// physWriters is how many fsync loops the parallel probe runs at once: one
// per node of the three-node clusters the scenarios start on this disk.
const physWriters = 3

func runPhys(r *report) error {
	for i := 0; i < r.st.physReps; i++ {
		f, err := fsyncLatency(r.tmp, r.st.physN)
		if err != nil {
			return err
		}
		t, err := tcpRTT(r.st.physN * 4)
		if err != nil {
			return err
		}
		r.phys.fsyncP50 = append(r.phys.fsyncP50, ms(f.pct(50)))
		r.phys.fsyncP99 = append(r.phys.fsyncP99, ms(f.pct(99)))
		r.phys.rttP50 = append(r.phys.rttP50, ms(t.pct(50)))
		r.phys.rttP99 = append(r.phys.rttP99, ms(t.pct(99)))
		r.phys.fsyncRate = append(r.phys.fsyncRate, float64(len(f))/f.sum().Seconds())
		pf, wall, err := fsyncParallel(r.tmp, physWriters, r.st.physN)
		if err != nil {
			return err
		}
		r.phys.parFsyncP50 = append(r.phys.parFsyncP50, ms(pf.pct(50)))
		r.phys.parFsyncP99 = append(r.phys.parFsyncP99, ms(pf.pct(99)))
		r.phys.parFsyncRate = append(r.phys.parFsyncRate, float64(len(pf))/wall.Seconds())
	}
	progress("physical reference (× %d): fsync p50 %s ms p99 %s ms, %s/s; %d writers at once p50 %s ms, %s/s in all; loopback TCP RTT p50 %s ms p99 %s ms",
		r.st.physReps, num(r.phys.fsyncP50.median()), num(r.phys.fsyncP99.median()), num(r.phys.fsyncRate.median()),
		physWriters, num(r.phys.parFsyncP50.median()), num(r.phys.parFsyncRate.median()), num(r.phys.rttP50.median()), num(r.phys.rttP99.median()))
	return nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// libraryVersion names the Interlock source the bench was built from: the
// repository's commit and how many library files differed from it (read
// only; the bench never changes the repository).
func libraryVersion() string {
	root := "../.."
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown (not a git checkout)"
	}
	v := "commit " + strings.TrimSpace(string(out))
	st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--", "cluster", "fsm", "scheduler", "transport", "go.mod").Output()
	if err == nil {
		if n := len(strings.Fields(strings.TrimSpace(string(st)))) / 2; n > 0 {
			v += fmt.Sprintf(", plus uncommitted changes to %d library files", n)
		}
	}
	return v
}
