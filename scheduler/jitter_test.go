package scheduler

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestJitterRangeAndDeterminism(t *testing.T) {
	const j = time.Second
	base := time.Unix(1_800_000_000, 0)
	for i := range 200 {
		job := fmt.Sprintf("job-%d", i)
		for k := range 20 {
			inst := base.Add(time.Duration(k) * time.Minute)
			d := jitter(job, inst, j)
			if d < 0 || d >= j {
				t.Fatalf("jitter(%s, %s) = %s; want in [0, %s)", job, inst, d, j)
			}
			if again := jitter(job, inst, j); again != d {
				t.Fatalf("jitter(%s, %s) = %s then %s; want the same on every call (and node)", job, inst, d, again)
			}
		}
	}
	if d := jitter("job", base, 0); d != 0 {
		t.Errorf("jitter with J = 0 is %s; want 0", d)
	}
}

// TestJitterSpreads: 2,000 jobs on the same instant spread evenly over the
// jitter, and one job's delay changes from tick to tick.
func TestJitterSpreads(t *testing.T) {
	const (
		j    = time.Second
		jobs = 2000
		bins = 10
	)
	inst := time.Unix(1_800_000_000, 0)
	var hist [bins]int
	for i := range jobs {
		hist[jitter(fmt.Sprintf("job-%d", i), inst, j)*bins/j]++
	}
	for b, n := range hist {
		if n < jobs/bins*6/10 || n > jobs/bins*14/10 {
			t.Errorf("bin %d of the jitter holds %d of %d jobs; want about %d (all: %v)", b, n, jobs, jobs/bins, hist)
		}
	}
	seen := map[time.Duration]bool{}
	for k := range 50 {
		seen[jitter("one", inst.Add(time.Duration(k)*time.Minute), j)] = true
	}
	if len(seen) < 45 {
		t.Errorf("one job's jitter took %d distinct values over 50 ticks; want it to vary by tick", len(seen))
	}
}

// TestJitterKeepsTheInstant: a jittered tick is due at instant+delay, but
// claimed by its scheduled instant, with the start deadline counted from
// the delayed start.
func TestJitterKeepsTheInstant(t *testing.T) {
	const interval = time.Minute
	coord := newFakeCoord("me", "me")
	s := newScheduler(coord, nil)
	if err := s.Add(Job{Name: "j", Interval: interval, Jitter: 40 * time.Second, Func: noop}); err != nil {
		t.Fatal(err)
	}
	js := s.jobs["j"]
	inst := TickAt(interval, TickIndex(interval, time.Now())+1)
	d := jitter("j", inst, 40*time.Second)
	s.mu.Lock()
	s.queueTickLocked(js, time.Time{}, inst)
	ev := s.queue.all()[0]
	s.queue.reset()
	c, ok := s.handleLocked(context.Background(), ev, ev.at)
	s.mu.Unlock()
	if !ev.at.Equal(inst.Add(d)) || !ev.inst.Equal(inst) {
		t.Fatalf("event due %s for %s; want due %s (instant + jitter %s) for %s", ev.at, ev.inst, inst.Add(d), d, inst)
	}
	if !ok {
		t.Fatal("no claim for the jittered tick")
	}
	if c.claim.At != inst.UnixNano() || c.claim.Deadline != inst.Add(d+interval).UnixNano() || c.claim.Tick != TickIndex(interval, inst) {
		t.Errorf("claim %+v; want At = the scheduled instant %d, Deadline = instant + jitter + StartDeadline, Tick = its index", c.claim, inst.UnixNano())
	}
}
