package scheduler

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
)

func TestGoIntervalRejectsInvalidInput(t *testing.T) {
	tests := []struct {
		name  string
		g     GoInterval
		field string
	}{
		{"zero interval", GoInterval{Name: "j", Arg: func() {}}, "GoInterval.Interval is missing"},
		{"zero interval, nil arg", GoInterval{Name: "j"}, "GoInterval.Interval is missing"},
		{"negative interval", GoInterval{Name: "j", Interval: -time.Second, Arg: func() {}}, "GoInterval.Interval is -1s"},
		{"nil arg", GoInterval{Name: "j", Interval: time.Second}, "GoInterval.Arg and GoInterval.Func are both nil"},
		{"arg and func", GoInterval{Name: "j", Interval: time.Second, Arg: func() {}, Func: func(context.Context, Run) error { return nil }}, "GoInterval.Arg and GoInterval.Func are both set"},
		// A zero Node is never used: the Name check comes first.
		{"empty name with cluster", GoInterval{Interval: time.Second, Arg: func() {}, Cluster: &cluster.Node{}}, "GoInterval.Name is empty"},
		{"empty name with cluster, func", GoInterval{Interval: time.Second, Func: func(context.Context, Run) error { return nil }, Cluster: &cluster.Node{}}, "GoInterval.Name is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { done <- tt.g.Run(context.Background()) }() // never cancelled
			select {
			case err := <-done:
				if !errors.Is(err, ErrInvalidJob) {
					t.Fatalf("Run = %v, want ErrInvalidJob", err)
				}
				if !strings.Contains(err.Error(), tt.field) {
					t.Errorf("error %q does not name %s", err, tt.field)
				}
			case <-time.After(waitTimeout):
				t.Fatal("Run did not return at once for invalid input")
			}
		})
	}
}

func runGoInterval(t *testing.T, g *GoInterval) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	var err error
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				err = errors.New("GoInterval.Run did not return within 10s of cancel")
			}
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func TestGoIntervalLocalRunsRepeatedly(t *testing.T) {
	// An empty Name is fine without a Cluster.
	for _, name := range []string{"", "named"} {
		var calls, inFlight atomic.Int32
		stop := runGoInterval(t, &GoInterval{Name: name, Interval: 10 * time.Millisecond, Arg: func() {
			inFlight.Add(1)
			defer inFlight.Add(-1)
			calls.Add(1)
			time.Sleep(3 * time.Millisecond) // some work, so Run may catch one in flight
		}})
		eventually(t, waitTimeout, func() bool { return calls.Load() >= 5 }, "name %q: Arg ran %d times", name, calls.Load())
		if err := stop(); err != nil {
			t.Errorf("name %q: Run = %v, want nil after cancel", name, err)
		}
		if n := inFlight.Load(); n != 0 {
			t.Errorf("name %q: Run returned with %d calls of Arg still going", name, n)
		}
	}
}

func TestGoIntervalRecoversPanic(t *testing.T) {
	var calls atomic.Int32
	stop := runGoInterval(t, &GoInterval{Name: "p", Interval: 10 * time.Millisecond, Arg: func() {
		calls.Add(1)
		panic("boom")
	}})
	eventually(t, waitTimeout, func() bool { return calls.Load() >= 3 }, "Arg stopped being called after panicking (%d calls)", calls.Load())
	if err := stop(); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

// TestGoIntervalLocalPhaseFromRunStart checks gointerlock's timing without
// a Cluster: the first run one Interval after Run is called, then one
// every Interval, counted from Run's start, whichever epoch phase that is.
func TestGoIntervalLocalPhaseFromRunStart(t *testing.T) {
	const interval = 150 * time.Millisecond
	// Start mid-way between two epoch ticks, where the epoch-aligned
	// schedule would run after half an Interval.
	for time.Now().UnixNano()%int64(interval) > int64(interval)/4 {
		time.Sleep(time.Millisecond)
	}
	rec := &runLog{}
	var started []time.Time
	var mu sync.Mutex
	before := time.Now()
	stop := runGoInterval(t, &GoInterval{Interval: interval, Func: func(_ context.Context, r Run) error {
		mu.Lock()
		started = append(started, time.Now())
		mu.Unlock()
		rec.add(r)
		return nil
	}})
	eventually(t, waitTimeout, func() bool { return rec.len() >= 4 }, "only %d runs", rec.len())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	runs := rec.snapshot()
	mu.Lock()
	first := started[0]
	mu.Unlock()
	if first.Before(before.Add(interval)) {
		t.Errorf("first run %s after Run was called; want at least one Interval (%s)", first.Sub(before), interval)
	}
	origin := runs[0].At.Add(-interval)
	if origin.Before(before) {
		t.Errorf("first run scheduled at %s, less than one Interval after Run was called at %s or later", runs[0].At, before)
	}
	for i, r := range runs {
		if r.Tick != int64(i+1) {
			t.Errorf("run %d has Tick %d; want %d (ticks count Intervals since Run started)", i, r.Tick, i+1)
		}
		if want := origin.Add(time.Duration(i+1) * interval); !r.At.Equal(want) {
			t.Errorf("run %d scheduled at %s; want Run's start + %d×Interval = %s", i, r.At, i+1, want)
		}
		if r.Token != 0 || r.Node != "" {
			t.Errorf("local run %d has Token %d, Node %q; want zero", i, r.Token, r.Node)
		}
	}
}

// TestGoIntervalArgFirstRunAfterOneInterval checks the same for Arg, the
// gointerlock field: no call earlier than one Interval after Run.
func TestGoIntervalArgFirstRunAfterOneInterval(t *testing.T) {
	const interval = 200 * time.Millisecond
	calls := make(chan time.Time, 100)
	before := time.Now()
	runGoInterval(t, &GoInterval{Name: "first", Interval: interval, Arg: func() { calls <- time.Now() }})
	select {
	case first := <-calls:
		if d := first.Sub(before); d < interval {
			t.Errorf("first Arg call %s after Run; want at least one Interval (%s)", d, interval)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Arg was never called")
	}
}

// TestGoIntervalFuncGetsContextAndRun checks that Func gets a live
// context and the run.
func TestGoIntervalFuncGetsContextAndRun(t *testing.T) {
	got := make(chan Run, 10)
	runGoInterval(t, &GoInterval{Name: "f", Interval: 20 * time.Millisecond, Func: func(ctx context.Context, r Run) error {
		if ctx == nil || ctx.Err() != nil {
			t.Errorf("run %d got a nil or ended context", r.Tick)
		}
		select {
		case got <- r:
		default:
		}
		return nil
	}})
	select {
	case r := <-got:
		if r.Job != "f" || r.Tick < 1 {
			t.Errorf("Run = %+v; want Job f and Tick ≥ 1", r)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Func was never called")
	}
}

// TestGoIntervalNilNodeIsLocal checks that a nil *cluster.Node in Cluster,
// as a gointerlock user passing a possibly-nil client would write, means
// local mode throughout: no Name needed, and ticks counted from Run's start.
func TestGoIntervalNilNodeIsLocal(t *testing.T) {
	var node *cluster.Node
	rec := &runLog{}
	stop := runGoInterval(t, &GoInterval{Interval: 50 * time.Millisecond, Cluster: node, Func: func(_ context.Context, r Run) error {
		rec.add(r)
		return nil
	}})
	eventually(t, waitTimeout, func() bool { return rec.len() >= 2 }, "only %d runs", rec.len())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if first := rec.snapshot()[0]; first.Tick != 1 || first.Token != 0 {
		t.Errorf("first run has Tick %d, Token %d; want the local schedule's Tick 1 and no token", first.Tick, first.Token)
	}
}
