package scheduler_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/scheduler"
)

// checkInstants fails the test if any scheduled instant ran twice, or if
// fencing tokens are out of the order grants allow
// (clustertest.TokenOrderViolations), and returns the runs by instant.
// Ticks are compared by instant: under different intervals one instant has
// different tick indexes.
func checkInstants(t *testing.T, runs []scheduler.Run) map[int64]scheduler.Run {
	t.Helper()
	byAt := make(map[int64]scheduler.Run)
	for _, r := range runs {
		at := r.At.UnixNano()
		if prev, dup := byAt[at]; dup {
			t.Errorf("instant %s ran twice: on %s (tick %d, token %d) and %s (tick %d, token %d)",
				r.At.Format(time.StampMilli), prev.Node, prev.Tick, prev.Token, r.Node, r.Tick, r.Token)
		}
		byAt[at] = r
	}
	for _, v := range clustertest.TokenOrderViolations(tokenRuns(runs)) {
		t.Errorf("fencing tokens out of order: %s", v)
	}
	return byAt
}

// tokenRuns gives runs the form clustertest.TokenOrderViolations takes.
func tokenRuns(runs []scheduler.Run) []clustertest.TokenRun {
	out := make([]clustertest.TokenRun, len(runs))
	for i, r := range runs {
		out[i] = clustertest.TokenRun{Job: r.Job, At: r.At.UnixNano(), Token: r.Token, Name: fmt.Sprintf("%s@%s on %s token %d", r.Job, r.At.Format(time.StampMilli), r.Node, r.Token)}
	}
	return out
}

// TestIntervalChangeOnLiveCluster changes a job's Interval from 250ms to
// 500ms on every replica of a running cluster, one replica after the
// other, as a rolling deploy would. The job must keep running at the new
// interval, and no instant may run twice, neither while the replicas
// disagree nor after.
func TestIntervalChangeOnLiveCluster(t *testing.T) {
	const from, to = 250 * time.Millisecond, 500 * time.Millisecond
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	c.Leader(10 * time.Second)
	rec := &recorder{}
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); wg.Wait() }()
	job := func(interval time.Duration) scheduler.Job {
		return scheduler.Job{Name: "report", Interval: interval, Func: func(_ context.Context, r scheduler.Run) error {
			rec.add(r)
			return nil
		}}
	}
	scheds := make([]*scheduler.Scheduler, len(c.Nodes))
	for i, n := range c.Nodes {
		scheds[i] = scheduler.New(scheduler.Options{Cluster: n})
		if err := scheds[i].Add(job(from)); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func(s *scheduler.Scheduler) {
			defer wg.Done()
			if err := s.Run(ctx); err != nil {
				t.Errorf("scheduler run: %v", err)
			}
		}(scheds[i])
	}
	clustertest.Eventually(t, 15*time.Second, func() bool { return len(rec.snapshot()) >= 8 }, "fewer than 8 runs at the old interval")

	for _, s := range scheds {
		if err := s.Remove("report"); err != nil {
			t.Fatal(err)
		}
		if err := s.Add(job(to)); err != nil {
			t.Fatal(err)
		}
	}
	changed := time.Now()
	t.Logf("%d runs at the old interval; changing it", len(rec.snapshot()))
	newRuns := func() int {
		n := 0
		for _, r := range rec.snapshot() {
			if r.At.After(changed) {
				if r.At.UnixNano()%int64(to) != 0 {
					t.Errorf("run at %s after the change is off the new interval", r.At.Format(time.StampMilli))
				}
				n++
			}
		}
		return n
	}
	clustertest.Eventually(t, 15*time.Second, func() bool { return newRuns() >= 8 }, "the job stopped running after its interval changed: %d runs since", newRuns())
	t.Logf("8 runs at the new interval within %s of the change", time.Since(changed))
	cancel()
	wg.Wait()
	checkInstants(t, rec.snapshot())
}

// TestMixedIntervalsRunEachInstantOnce runs one job on two replicas that
// disagree on its interval, 250ms on one and 500ms on the other, as in the
// middle of a rolling deploy. Every instant of the 500ms replica is also
// one of the 250ms replica's, under another tick index: it must run once,
// and the 500ms replica must keep getting its share of those instants
// rather than be refused as taken from the 250ms replica's first run on.
func TestMixedIntervalsRunEachInstantOnce(t *testing.T) {
	const fast, slow = 250 * time.Millisecond, 500 * time.Millisecond
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	c.Leader(10 * time.Second)
	rec := &recorder{}
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); wg.Wait() }()
	for i, interval := range []time.Duration{fast, slow} {
		s := scheduler.New(scheduler.Options{Cluster: c.Nodes[i]})
		if err := s.Add(scheduler.Job{Name: "report", Interval: interval, Func: func(_ context.Context, r scheduler.Run) error {
			rec.add(r)
			return nil
		}}); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Run(ctx); err != nil {
				t.Errorf("scheduler run: %v", err)
			}
		}()
	}
	fastNode, slowNode := c.Nodes[0].Name(), c.Nodes[1].Name()
	// counts returns how many shared instants ran, and how many of them
	// ran on the 500ms replica after the 250ms replica's first run.
	counts := func() (shared, slowAfterFast int) {
		runs := rec.snapshot()
		var firstFast time.Time
		for _, r := range runs {
			if r.Node == fastNode && (firstFast.IsZero() || r.At.Before(firstFast)) {
				firstFast = r.At
			}
		}
		for _, r := range runs {
			if r.At.UnixNano()%int64(slow) != 0 {
				continue
			}
			shared++
			if r.Node == slowNode && !firstFast.IsZero() && r.At.After(firstFast) {
				slowAfterFast++
			}
		}
		return shared, slowAfterFast
	}
	clustertest.Eventually(t, 30*time.Second, func() bool {
		shared, slowRuns := counts()
		return shared >= 10 && slowRuns >= 3
	}, "the 500ms replica stopped getting instants once the 250ms one ran")
	cancel()
	wg.Wait()
	byAt := checkInstants(t, rec.snapshot())
	nodes := map[string]int{}
	for _, r := range byAt {
		nodes[r.Node]++
	}
	t.Logf("%d instants run, per node %v", len(byAt), nodes)
}
