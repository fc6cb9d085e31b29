package cluster_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/scheduler"
)

// BenchmarkTick measures the scheduler at scale on a real three-node
// cluster in this process, with the Raft log in bolt on disk: every node
// runs a Scheduler with the same N jobs at a 1 s interval, and each
// iteration is one tick (one second) of all of them. It fails on a
// duplicate run, and reports:
//
//   - lateness of the runs (p50-ms, p99-ms, max-ms): a run's start minus its
//     tick's instant; first-ms is the median over ticks of the earliest
//     run's, the time a tick's first grant takes;
//   - missed: (job, tick) pairs of the window that ran nowhere;
//   - entries/s: Raft entries committed per second, and cmds/entry: the
//     commands group commit packed into each (counted by the leader's
//     batcher);
//   - cpu-ms/tick: the process's CPU time (all three nodes) per tick, which
//     a shared machine disturbs less than wall time.
//
// Run it alone, with a CPU profile to see where the time goes:
//
//	go test -run '^$' -bench 'BenchmarkTick/jobs=50000' -benchtime 5x -cpuprofile cpu.out ./cluster/
//
// -cpuprofile also records starting the cluster and registering the jobs.
// To profile only the measured ticks, name a file in INTERLOCK_TICK_PROFILE
// instead (without -cpuprofile).
func BenchmarkTick(b *testing.B) {
	for _, jobs := range []int{1000, 10000, 50000} {
		b.Run(fmt.Sprintf("jobs=%d", jobs), func(b *testing.B) { benchTick(b, jobs) })
	}
}

// tickRecorder counts runs per (job, tick) in a window of ticks and keeps
// every run's lateness, without a lock on the runs' path.
type tickRecorder struct {
	k0, ticks int64
	counts    []atomic.Int32 // jobs × ticks
	late      []time.Duration
	n         atomic.Int64
	// first is each tick's earliest lateness: how long the first grant
	// of the tick took to come back.
	first []atomic.Int64
}

func (r *tickRecorder) add(job int, run scheduler.Run, start time.Time) {
	i := run.At.Unix() - r.k0
	if i < 0 || i >= r.ticks || run.At.UnixNano()%int64(time.Second) != 0 {
		return
	}
	r.counts[int64(job)*r.ticks+i].Add(1)
	late := start.Sub(run.At)
	if k := r.n.Add(1) - 1; k < int64(len(r.late)) {
		r.late[k] = late
	}
	for f := &r.first[i]; ; {
		cur := f.Load()
		if (cur != 0 && cur <= int64(late)) || f.CompareAndSwap(cur, int64(late)) {
			break
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchTick(b *testing.B, jobs int) {
	c := clustertest.MakeCluster(b, 3, clustertest.Options{DataDir: true})
	leader := c.Nodes[c.Leader(10*time.Second)]
	names := make([]string, jobs)
	for j := range names {
		names[j] = fmt.Sprintf("tick-%d", j)
	}
	var rec atomic.Pointer[tickRecorder]
	scheds := make([]*scheduler.Scheduler, len(c.Nodes))
	for i, n := range c.Nodes {
		s := scheduler.New(scheduler.Options{Cluster: n})
		for j := range names {
			err := s.Add(scheduler.Job{Name: names[j], Interval: time.Second, Func: func(_ context.Context, r scheduler.Run) error {
				start := time.Now()
				if tr := rec.Load(); tr != nil {
					tr.add(j, r, start)
				}
				return nil
			}})
			if err != nil {
				b.Fatal(err)
			}
		}
		scheds[i] = s
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range scheds {
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.Run(ctx) }()
	}
	defer func() { cancel(); wg.Wait() }()
	clustertest.Eventually(b, 60*time.Second, func() bool {
		for _, n := range c.Nodes {
			if len(clustertest.Candidates(n, names[jobs-1])) < len(c.Nodes) {
				return false
			}
		}
		return true
	}, "jobs not registered on every node")

	// The window: b.N whole seconds, starting at the first whole second
	// at least 300 ms away.
	ws := time.Now().Add(300 * time.Millisecond).Truncate(time.Second).Add(time.Second)
	tr := &tickRecorder{k0: ws.Unix(), ticks: int64(b.N), counts: make([]atomic.Int32, int64(jobs)*int64(b.N)), late: make([]time.Duration, 2*jobs*b.N), first: make([]atomic.Int64, b.N)}
	rec.Store(tr)
	time.Sleep(time.Until(ws))
	stopProfile := tickProfile(b)
	var mem0, mem1 runtime.MemStats
	runtime.ReadMemStats(&mem0)
	b.ResetTimer()
	cpu0, idx0 := cpuTime(), leader.AppliedIndex()
	ent0, cmd0 := cluster.BatchCounts(leader)
	we := ws.Add(time.Duration(b.N) * time.Second)
	time.Sleep(time.Until(we))
	cpu1, idx1 := cpuTime(), leader.AppliedIndex()
	ent1, cmd1 := cluster.BatchCounts(leader)
	b.StopTimer()
	runtime.ReadMemStats(&mem1)
	stopProfile()
	// Runs of the last tick may start up to its deadline, one interval on.
	time.Sleep(time.Second + 200*time.Millisecond)

	missed, dups := 0, 0
	for i := range tr.counts {
		switch n := tr.counts[i].Load(); {
		case n == 0:
			missed++
		case n > 1:
			dups += int(n) - 1
		}
	}
	if dups > 0 {
		b.Fatalf("%d duplicate runs", dups)
	}
	late := tr.late[:min(tr.n.Load(), int64(len(tr.late)))]
	slices.Sort(late)
	pct := func(p float64) float64 {
		if len(late) == 0 {
			return -1
		}
		return float64(late[min(len(late)-1, int(float64(len(late))*p))]) / float64(time.Millisecond)
	}
	secs := float64(b.N)
	firsts := make([]time.Duration, 0, b.N)
	for i := range tr.first {
		firsts = append(firsts, time.Duration(tr.first[i].Load()))
	}
	slices.Sort(firsts)
	b.ReportMetric(float64(firsts[len(firsts)/2])/float64(time.Millisecond), "first-ms")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
	b.ReportMetric(float64(missed), "missed")
	b.ReportMetric(float64(idx1-idx0)/secs, "entries/s")
	if ent1 > ent0 {
		b.ReportMetric(float64(cmd1-cmd0)/float64(ent1-ent0), "cmds/entry")
	}
	b.ReportMetric(float64(cpu1-cpu0)/float64(time.Millisecond)/secs, "cpu-ms/tick")
	b.ReportMetric(float64(mem1.Mallocs-mem0.Mallocs)/secs, "allocs/tick")
	b.ReportMetric(float64(mem1.TotalAlloc-mem0.TotalAlloc)/secs/(1<<20), "MiB/tick")
	b.ReportMetric(0, "ns/op")
}

// tickProfile starts a CPU profile of the measured ticks into the file
// INTERLOCK_TICK_PROFILE names, if it is set, and returns what stops it.
func tickProfile(b *testing.B) (stop func()) {
	path := os.Getenv("INTERLOCK_TICK_PROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatalf("INTERLOCK_TICK_PROFILE: %v (run without -cpuprofile)", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
