package integration

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTwentyFiveNodes starts 25 node processes on loopback with
// -max-voters 5: five voters and twenty non-voters. Fifty 1 s jobs must run
// exactly once per tick, spread over all 25 nodes; the test logs each
// node's CPU and RSS over a few idle seconds (a -race build, so well above
// a release build's), then SIGKILLs the leader and measures the time to the
// next run of every job.
func TestTwentyFiveNodes(t *testing.T) {
	const n, jobs = 25, 50
	var spec []string
	for j := range jobs {
		spec = append(spec, fmt.Sprintf("j%d:1s", j))
	}
	c := startCluster(t, n, clusterOpts{Jobs: strings.Join(spec, ","), MaxVoters: 5, LogLevel: "warn", ReadyTimeout: 90 * time.Second})
	leader := c.WaitLeader(30 * time.Second)
	st := c.MustStatus(leader)
	if len(st.Servers) != n || len(st.Voters()) != 5 || len(st.NonVoters()) != n-5 {
		t.Fatalf("configuration is %+v, want %d servers, 5 voters", st.Servers, n)
	}

	// Exactly once per tick, on every node: 5 s of ticks after all are in.
	from := time.Now().Add(time.Second)
	runs := c.WaitRuns(30*time.Second, jobs*5, func(r Run) bool { return r.StartTime().After(from) }, "after the cluster formed")
	checkRuns(t, runs)
	k0 := tickOf(time.Second, from) + 1
	k1 := k0 + 4
	missed := 0
	for j := range jobs {
		missed += len(missedTicks(runs, fmt.Sprintf("j%d", j), k0, k1))
	}
	if missed > 0 {
		t.Errorf("%d of %d ticks missed in [%d, %d]", missed, jobs*5, k0, k1)
	}
	// Spread: every node runs some, given the whole test's runs.
	eventually(t, 30*time.Second, func() bool { return len(perNode(c.ReadRuns())) == n }, "runs on fewer than %d nodes: %v", n, lazy(func() string { return fmt.Sprint(perNode(c.ReadRuns())) }))

	// Per-node CPU and RSS over 3 s.
	before := make([]uint64, n)
	for i := range n {
		before[i], _ = procCPU(c.nodes[i].cmd.Process.Pid)
	}
	t0 := time.Now()
	time.Sleep(3 * time.Second)
	var report []string
	for i := range n {
		ticks, rss := procCPU(c.nodes[i].cmd.Process.Pid)
		pct := float64(ticks-before[i]) / 100 / time.Since(t0).Seconds() * 100
		role := "non-voter"
		if i == leader {
			role = "leader"
		} else if slices.Contains(st.Voters(), c.Name(i)) {
			role = "voter"
		}
		report = append(report, fmt.Sprintf("%s (%s) %.1f%% %d MiB", c.Name(i), role, pct, rss/1024))
	}
	t.Logf("per node, 50 jobs at 1 s, -race build: %s", strings.Join(report, "; "))

	// Leader failover: SIGKILL, then the next run of every job.
	kill := time.Now()
	c.Kill(leader)
	next := c.WaitLeader(30 * time.Second)
	elected := time.Since(kill)
	after := c.WaitRuns(30*time.Second, jobs, func(r Run) bool { return r.StartTime().After(kill) }, "after the leader's kill")
	first := time.Duration(-1)
	for _, r := range after {
		if r.StartTime().After(kill) && (first < 0 || r.StartTime().Sub(kill) < first) {
			first = r.StartTime().Sub(kill)
		}
	}
	checkRuns(t, c.ReadRuns())
	t.Logf("killed leader %s: %s leads after %s; first run %s after the kill", c.Name(leader), c.Name(next), elected.Round(time.Millisecond), first.Round(time.Millisecond))
}

// procCPU returns a process's user+system clock ticks and its RSS in KiB.
func procCPU(pid int) (ticks, rssKiB uint64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	rssPages, _ := strconv.ParseUint(f[21], 10, 64)
	return ut + st, rssPages * uint64(os.Getpagesize()) / 1024
}
