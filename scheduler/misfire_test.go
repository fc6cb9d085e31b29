package scheduler

import (
	"errors"
	"testing"
	"time"

	"github.com/interlockraft/interlock/fsm"
)

// countErrors returns how many of errs wrap target.
func countErrors(errs []error, target error) int {
	n := 0
	for _, err := range errs {
		if errors.Is(err, target) {
			n++
		}
	}
	return n
}

// TestMisfireAfterDowntime starts a node on a job whose last grant, by a
// peer, is 20 ticks old, as after the whole cluster was down: the ticks in
// between ran nowhere. Every policy counts and reports them; RunOnce also
// claims the newest once, by its own instant, if within the window.
func TestMisfireAfterDowntime(t *testing.T) {
	const interval = 200 * time.Millisecond
	tests := []struct {
		name    string
		misfire Misfire
		window  time.Duration
		catchUp bool
	}{
		{"skip forgets them", Skip, 0, false},
		{"run once within the window", RunOnce, 2 * time.Second, true},
		{"run once, but the newest is older than the window", RunOnce, interval / 4, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			coord := newFakeCoord("me", "me")
			last := TickAt(interval, TickIndex(interval, time.Now())-20)
			coord.mu.Lock()
			res := coord.applyLocked("peer", []fsm.Claim{{Job: "j", Tick: TickIndex(interval, last), At: last.UnixNano(), Deadline: last.Add(time.Hour).UnixNano()}})
			coord.mu.Unlock()
			if !res.Outcomes[0].Granted() {
				t.Fatalf("setup: grant refused: %+v", res.Outcomes[0])
			}
			var log runLog
			var errs errorLog
			s := newScheduler(coord, nil)
			s.onError = errs.add
			if err := s.Add(Job{Name: "j", Interval: interval, Misfire: tt.misfire, MisfireWindow: tt.window, Func: log.record()}); err != nil {
				t.Fatal(err)
			}
			started := time.Now()
			stop := startRun(t, s)
			// Three regular ticks, so a late or repeated catch-up would show.
			eventually(t, waitTimeout, func() bool {
				n := 0
				for _, r := range log.snapshot() {
					if r.At.After(started) {
						n++
					}
				}
				return n >= 3
			}, "fewer than 3 regular runs")
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			missed := s.Stats()["j"].Missed
			// (last, started − StartDeadline] holds 18 or 19 ticks.
			if missed < 17 || missed > 20 {
				t.Errorf("Missed = %d; want the ~19 ticks since the last grant", missed)
			}
			if n := countErrors(errs.get("j"), ErrMissed); n != 1 {
				t.Errorf("OnError got %d ErrMissed; want 1 report covering them all", n)
			}
			var old []fsm.Claim
			for _, c := range coord.claimCalls() {
				for _, cl := range c.claims {
					if time.Unix(0, cl.At).Before(started) {
						old = append(old, cl)
					}
				}
			}
			if !tt.catchUp {
				if len(old) != 0 {
					t.Fatalf("claims for missed ticks %+v; want none", old)
				}
				return
			}
			if len(old) != 1 {
				t.Fatalf("claims for missed ticks %+v; want exactly one catch-up", old)
			}
			c := old[0]
			at := time.Unix(0, c.At)
			if age := started.Sub(at); age < interval || age > 3*interval || c.Deadline != at.Add(tt.window).UnixNano() {
				t.Errorf("catch-up claim %+v (%s before start); want the newest missed tick, with a deadline of its instant + MisfireWindow", c, age)
			}
			var ran bool
			for _, r := range log.snapshot() {
				ran = ran || r.At.Equal(at)
			}
			if !ran {
				t.Error("the granted catch-up did not run")
			}
		})
	}
}

// TestMisfireNewJob: a job the cluster never granted has no missed ticks.
func TestMisfireNewJob(t *testing.T) {
	const interval = 100 * time.Millisecond
	coord := newFakeCoord("me", "me")
	var log runLog
	s := newScheduler(coord, nil)
	if err := s.Add(Job{Name: "j", Interval: interval, Misfire: RunOnce, Func: log.record()}); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	stop := startRun(t, s)
	eventually(t, waitTimeout, func() bool { return log.len() >= 2 }, "fewer than 2 runs")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if m := s.Stats()["j"].Missed; m != 0 {
		t.Errorf("Missed = %d for a new job; want 0", m)
	}
	for _, r := range log.snapshot() {
		if r.At.Before(started) {
			t.Errorf("ran %s, before the job was started", r.At)
		}
	}
}
