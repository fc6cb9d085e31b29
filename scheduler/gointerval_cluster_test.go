package scheduler_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/scheduler"
)

// TestGoIntervalClusterFirstTickAfterOneInterval checks GoInterval's
// timing with a Cluster: runs stay on epoch-aligned ticks, and the first is
// the first tick at least one Interval after Run was called, never the
// next epoch boundary that may come much sooner.
func TestGoIntervalClusterFirstTickAfterOneInterval(t *testing.T) {
	const interval = 400 * time.Millisecond
	c := clustertest.MakeCluster(t, 1, clustertest.Options{})
	c.Leader(10 * time.Second)
	// Call Run three quarters of the way to an epoch tick: the next
	// boundary is a quarter Interval away, which must not run.
	for time.Now().UnixNano()%int64(interval) < 3*int64(interval)/4 {
		time.Sleep(time.Millisecond)
	}
	var (
		mu   sync.Mutex
		runs []scheduler.Run
	)
	g := &scheduler.GoInterval{Name: "first-tick", Interval: interval, Cluster: c.Nodes[0], Func: func(_ context.Context, r scheduler.Run) error {
		mu.Lock()
		runs = append(runs, r)
		mu.Unlock()
		return nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	before := time.Now()
	go func() { done <- g.Run(ctx) }()
	clustertest.Eventually(t, 15*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(runs) >= 3
	}, "fewer than 3 runs")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	first := runs[0]
	if first.At.UnixNano()%int64(interval) != 0 {
		t.Errorf("first run at %s is not on an epoch-aligned tick", first.At)
	}
	if first.At.Before(before.Add(interval)) {
		t.Errorf("first run's tick %s is %s after Run was called; want at least one Interval (%s)", first.At.Format(time.StampMilli), first.At.Sub(before), interval)
	}
	if first.At.After(before.Add(2 * interval)) {
		t.Errorf("first run's tick %s is %s after Run was called; want the first tick at least one Interval after it", first.At.Format(time.StampMilli), first.At.Sub(before))
	}
	for i := 1; i < len(runs); i++ {
		if runs[i].Tick != runs[i-1].Tick+1 || runs[i].Token <= runs[i-1].Token {
			t.Errorf("run %d: tick %d token %d after tick %d token %d; want consecutive ticks, increasing tokens", i, runs[i].Tick, runs[i].Token, runs[i-1].Tick, runs[i-1].Token)
		}
	}
}
