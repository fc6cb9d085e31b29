package scheduler

import (
	"context"
	"errors"
	"strings"
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
		{"zero interval", GoInterval{Name: "j", Arg: func() {}}, "Interval"},
		{"negative interval", GoInterval{Name: "j", Interval: -time.Second, Arg: func() {}}, "Interval"},
		{"nil arg", GoInterval{Name: "j", Interval: time.Second}, "Arg"},
		// A zero Node is never used: the Name check comes first.
		{"empty name with cluster", GoInterval{Interval: time.Second, Arg: func() {}, Cluster: &cluster.Node{}}, "Name"},
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
