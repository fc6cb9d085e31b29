package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"time"
)

// The idle profile step (-only=idleprof, not part of a normal run): three
// Interlock replicas with 100 jobs at a 1 h interval, each writing a CPU
// profile of its idle time, and the top functions of the leader's and a
// follower's profile. It is how the idle node's CPU is traced to its
// sources (Raft heartbeats, gossip probes, timers).

var fProfileFor = flag.Duration("cpuprofile-for", 0, "role: write a CPU profile of this long, starting once ready, to <dir>/cpu.prof")

// profileChild starts the CPU profile of a child role if asked to.
func profileChild() {
	if *fProfileFor <= 0 {
		return
	}
	f, err := os.Create(filepath.Join(*fDir, "cpu.prof"))
	if err != nil {
		fatalf("cpu profile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fatalf("cpu profile: %v", err)
	}
	time.AfterFunc(*fProfileFor, func() {
		pprof.StopCPUProfile()
		f.Close()
	})
}

func runIdleProf(r *report) error {
	const d = 30 * time.Second
	dir := filepath.Join(r.tmp, "idleprof")
	cs, err := startReplicas(sysInterlock, dir, "idle:1h:100", 0, nil, "", "-print-runs=false", "-report-leader=false", "-cpuprofile-for="+d.String())
	if err != nil {
		return err
	}
	defer stopAll(cs)
	var a, b []procSample
	for _, c := range cs {
		s, _ := sampleProc(c.pid())
		a = append(a, s)
	}
	time.Sleep(d + 2*time.Second)
	for i, c := range cs {
		s, _ := sampleProc(c.pid())
		b = append(b, s)
		role := "leader or follower: see the raft functions"
		prof := filepath.Join(dir, c.name[len(c.name)-2:], "cpu.prof")
		out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=25", prof).CombinedOutput()
		if err != nil {
			return fmt.Errorf("pprof %s: %v\n%s", prof, err, out)
		}
		progress("idle profile of %s (%s): %.2f%% of a core, RSS %d MiB\n%s", c.name, role, cpuPct(a[i], b[i]), b[i].rssKiB/1024, out)
	}
	return nil
}
