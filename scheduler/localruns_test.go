package scheduler

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/internal/runreg"
)

// nodeCoord is a fakeCoord with a node-wide run registry, as a cluster
// node has.
type nodeCoord struct {
	*fakeCoord
	reg *runreg.Registry
}

func (c nodeCoord) LocalRuns() *runreg.Registry { return c.reg }

// Two Schedulers of one node that both see the same grant (the state
// machine answers the second claim from the node as a repeat) start it
// once, in either order. An earlier instant that never ran here still
// starts, once: the cluster grants an instant after a later one when their
// claims committed out of order.
func TestSchedulersOfOneNodeShareRuns(t *testing.T) {
	coord := nodeCoord{fakeCoord: newFakeCoord("me", "me"), reg: runreg.New()}
	var log runLog
	var schedulers []*Scheduler
	var states []*jobState
	for range 2 {
		s := newScheduler(coord, nil)
		if err := s.Add(Job{Name: "j", Interval: time.Hour, Func: log.record()}); err != nil {
			t.Fatal(err)
		}
		schedulers = append(schedulers, s)
		s.mu.Lock()
		states = append(states, s.jobs["j"])
		s.mu.Unlock()
	}
	ctx := context.Background()
	at := func(k int64) Run { return Run{Job: "j", Tick: k, At: TickAt(time.Hour, k), Token: uint64(k)} }
	schedulers[0].start(ctx, states[0], at(5))
	schedulers[1].start(ctx, states[1], at(5)) // the repeat: same grant
	schedulers[1].start(ctx, states[1], at(4)) // granted after 5
	schedulers[0].start(ctx, states[0], at(4)) // and seen again
	schedulers[1].start(ctx, states[1], at(6))
	schedulers[0].start(ctx, states[0], at(6))
	for _, s := range schedulers {
		s.runs.Wait()
	}
	var ticks []int64
	for _, r := range log.snapshot() {
		ticks = append(ticks, r.Tick)
	}
	slices.Sort(ticks)
	if !slices.Equal(ticks, []int64{4, 5, 6}) {
		t.Fatalf("ran ticks %v, want [4 5 6] once each", ticks)
	}
}

// Run refuses to start on a node that is shutting down, with an error
// that wraps cluster.ErrShutdown, and a node's shutdown ends a Run that
// was going.
func TestRunStopsWhenTheNodeStopsItsRuns(t *testing.T) {
	coord := nodeCoord{fakeCoord: newFakeCoord("me", "me"), reg: runreg.New()}
	s := newScheduler(coord, nil)
	if err := s.Add(Job{Name: "j", Interval: time.Hour, Func: noop}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	eventually(t, 5*time.Second, func() bool { return isRunning(s) }, "Run never started")
	coord.reg.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run stopped by its node returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still going 10s after its node closed its runs")
	}
	err := newScheduler(coord, nil).Run(context.Background())
	if err == nil || !errors.Is(err, cluster.ErrShutdown) {
		t.Fatalf("Run on a node that shut down = %v, want an error wrapping cluster.ErrShutdown", err)
	}
}
