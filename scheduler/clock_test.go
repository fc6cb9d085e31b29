package scheduler_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/scheduler"
	"github.com/interlockraft/interlock/scheduler/schedulertest"
)

// clockRun is one run seen on a fake clock.
type clockRun struct {
	run scheduler.Run
}

type clockRuns struct {
	mu   sync.Mutex
	runs []clockRun
}

func (c *clockRuns) fn() scheduler.Func {
	return func(_ context.Context, r scheduler.Run) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.runs = append(c.runs, clockRun{r})
		return nil
	}
}

func (c *clockRuns) snapshot() []clockRun {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(c.runs)
	slices.SortFunc(out, func(a, b clockRun) int { return a.run.At.Compare(b.run.At) })
	return out
}

// playUntil runs s on clk, stepping the clock from timer to timer up to
// end, then stops s, and returns the times it stepped to: the moments the
// Scheduler woke for. The jobs must not skip
// ticks while running (AllowOverlap), since the clock moves faster than
// the runs' goroutines.
func playUntil(t *testing.T, s *scheduler.Scheduler, clk *schedulertest.Clock, end time.Time) []time.Time {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	step, stepCancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer stepCancel()
	var steps []time.Time
	for {
		// The loop arms its next timer only after handling what was due,
		// so once a timer past end is pending, every run up to end started.
		at, err := clk.WaitTimer(step)
		if err != nil {
			cancel()
			<-done
			t.Fatalf("the scheduler set no timer at %s: %v", clk.Now(), err)
		}
		if at.After(end) {
			break
		}
		clk.Advance(at.Sub(clk.Now()))
		steps = append(steps, at)
	}
	cancel()
	if err := <-done; err != nil { // Run waits for the runs it started
		t.Fatal(err)
	}
	return steps
}

func berlin(t *testing.T, s string) time.Time {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestDST plays daily Europe/Berlin jobs across both 2026 transitions on a
// fake clock. Clocks go forward on 29 March at 02:00 CET to 03:00 CEST, so
// 02:30 does not exist that day: the 02:30 job does not run on 29 March
// (as with robfig/cron), and runs again at 02:30 on the 30th. Clocks go
// back on 25 October at 03:00 CEST to 02:00 CET, so 02:30 happens twice:
// the 02:30 job runs once, at the first 02:30 (CEST), and a 01:30 job is
// unaffected. An hourly job runs in each real hour, both 02:00s included.
func TestDST(t *testing.T) {
	tests := []struct {
		name       string
		spec       string
		start, end string // Berlin wall clock
		want       []string
	}{
		{"spring forward: 02:30 skipped that day", "CRON_TZ=Europe/Berlin 30 2 * * *", "2026-03-27 12:00", "2026-03-31 12:00",
			[]string{"2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"}},
		{"spring forward: 01:30 unaffected", "CRON_TZ=Europe/Berlin 30 1 * * *", "2026-03-28 12:00", "2026-03-30 12:00",
			[]string{"2026-03-29T00:30:00Z", "2026-03-29T23:30:00Z"}},
		{"fall back: 02:30 runs once", "CRON_TZ=Europe/Berlin 30 2 * * *", "2026-10-24 12:00", "2026-10-27 12:00",
			[]string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z"}},
		{"fall back: 01:30 runs once", "CRON_TZ=Europe/Berlin 30 1 * * *", "2026-10-24 12:00", "2026-10-26 12:00",
			[]string{"2026-10-24T23:30:00Z", "2026-10-26T00:30:00Z"}},
		{"fall back: hourly runs every real hour", "TZ=Europe/Berlin 0 * * * *", "2026-10-25 00:30", "2026-10-25 04:30",
			[]string{"2026-10-24T23:00:00Z", "2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sched, err := scheduler.Cron(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			clk := schedulertest.NewClock(berlin(t, tt.start))
			s := scheduler.New(scheduler.Options{Clock: clk, Logger: hclog.NewNullLogger()})
			var runs clockRuns
			if err := s.Add(scheduler.Job{Name: "dst", Schedule: sched, Overlap: scheduler.AllowOverlap, Func: runs.fn()}); err != nil {
				t.Fatal(err)
			}
			playUntil(t, s, clk, berlin(t, tt.end))
			var got []string
			for _, r := range runs.snapshot() {
				got = append(got, r.run.At.UTC().Format(time.RFC3339))
				if r.run.Tick != r.run.At.UnixNano() {
					t.Errorf("cron run Tick = %d; want At in Unix nanoseconds (%d)", r.run.Tick, r.run.At.UnixNano())
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("runs at %v; want %v", got, tt.want)
			}
		})
	}
}

// TestEveryOffsetOnFakeClock plays a week of a daily 03:00 UTC job in
// milliseconds, and checks Tick counts days since the epoch.
func TestEveryOffsetOnFakeClock(t *testing.T) {
	start := mustTime(t, "2026-06-01T00:00:00Z")
	clk := schedulertest.NewClock(start)
	s := scheduler.New(scheduler.Options{Clock: clk, Logger: hclog.NewNullLogger()})
	var runs clockRuns
	if err := s.Add(scheduler.Job{Name: "daily", Schedule: scheduler.Every(24 * time.Hour).Offset(3 * time.Hour), Overlap: scheduler.AllowOverlap, Func: runs.fn()}); err != nil {
		t.Fatal(err)
	}
	playUntil(t, s, clk, start.Add(7*24*time.Hour))
	got := runs.snapshot()
	if len(got) != 7 {
		t.Fatalf("%d runs in a week; want 7", len(got))
	}
	for i, r := range got {
		want := start.Add(time.Duration(i)*24*time.Hour + 3*time.Hour)
		if !r.run.At.Equal(want) || r.run.Tick != want.Unix()/86400 {
			t.Errorf("run %d: At %s Tick %d; want %s, Tick %d", i, r.run.At.UTC(), r.run.Tick, want, want.Unix()/86400)
		}
	}
}

// TestAtRunsOnce: an At schedule runs once, and the Scheduler then has
// nothing more to wait for.
func TestAtRunsOnce(t *testing.T) {
	start := mustTime(t, "2026-06-01T00:00:00Z")
	clk := schedulertest.NewClock(start)
	s := scheduler.New(scheduler.Options{Clock: clk, Logger: hclog.NewNullLogger()})
	var runs clockRuns
	at := start.Add(90 * time.Minute)
	if err := s.Add(scheduler.Job{Name: "once", Schedule: scheduler.At(at), Func: runs.fn()}); err != nil {
		t.Fatal(err)
	}
	playUntil(t, s, clk, start.Add(48*time.Hour))
	got := runs.snapshot()
	if len(got) != 1 || !got[0].run.At.Equal(at) {
		t.Fatalf("runs %+v; want exactly one, at %s", got, at)
	}
}

// TestJitterAgreesAcrossNodes plays the same jittered jobs on two
// Schedulers, as on two replicas: they wake at the same moments, the runs
// keep their scheduled instants, and the jobs do not all start together.
func TestJitterAgreesAcrossNodes(t *testing.T) {
	start := mustTime(t, "2026-06-01T00:00:00Z")
	const jitter = 30 * time.Second
	play := func() ([]time.Time, []clockRun) {
		clk := schedulertest.NewClock(start)
		s := scheduler.New(scheduler.Options{Clock: clk, Logger: hclog.NewNullLogger()})
		var runs clockRuns
		for i := range 10 {
			if err := s.Add(scheduler.Job{Name: fmt.Sprintf("job-%d", i), Interval: time.Minute, Jitter: jitter, Overlap: scheduler.AllowOverlap, Func: runs.fn()}); err != nil {
				t.Fatal(err)
			}
		}
		steps := playUntil(t, s, clk, start.Add(5*time.Minute))
		// The runs of the ticks up to 00:04 surely started: the clock
		// moved past them only after the loop had handled them. The last
		// ticks may race with the stop.
		var settled []clockRun
		for _, r := range runs.snapshot() {
			if r.run.At.Before(start.Add(4*time.Minute + time.Second)) {
				settled = append(settled, r)
			}
		}
		return steps, settled
	}
	stepsA, runsA := play()
	stepsB, runsB := play()
	if !slices.EqualFunc(stepsA, stepsB, time.Time.Equal) {
		t.Errorf("two nodes woke at different moments:\n%v\n%v", stepsA, stepsB)
	}
	if len(runsA) != 40 || len(runsB) != 40 {
		t.Fatalf("%d and %d runs of 10 jobs for the ticks 00:01 to 00:04; want 40 each", len(runsA), len(runsB))
	}
	for _, r := range runsA {
		if r.run.At.Truncate(time.Minute) != r.run.At {
			t.Errorf("run At %s; want the scheduled instant, on the minute", r.run.At)
		}
	}
	var offMinute int
	for _, at := range stepsA {
		if d := at.Sub(at.Truncate(time.Minute)); d > 0 && d < jitter {
			offMinute++
		} else if d >= jitter {
			t.Errorf("woke at %s, %s after the minute; want within the jitter %s", at, d, jitter)
		}
	}
	if offMinute < 20 {
		t.Errorf("only %d wake-ups inside the jitter window; want the jobs spread over it", offMinute)
	}
}

// TestMisfireLocalFallBehind: a local Scheduler whose clock jumps ten
// minutes (a paused process) counts the minute ticks it fell behind on
// and, under RunOnce, runs only the newest of them, once.
func TestMisfireLocalFallBehind(t *testing.T) {
	for _, policy := range []scheduler.Misfire{scheduler.Skip, scheduler.RunOnce} {
		t.Run(policy.String(), func(t *testing.T) {
			start := mustTime(t, "2026-06-01T00:00:00Z")
			clk := schedulertest.NewClock(start)
			s := scheduler.New(scheduler.Options{Clock: clk, Logger: hclog.NewNullLogger()})
			var runs clockRuns
			if err := s.Add(scheduler.Job{Name: "m", Interval: time.Minute, Misfire: policy, MisfireWindow: 10 * time.Minute, Overlap: scheduler.AllowOverlap, Func: runs.fn()}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			step, stepCancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer stepCancel()
			if _, err := clk.AdvanceToNext(step); err != nil { // 00:01, on time
				t.Fatal(err)
			}
			// Wait for the loop to arm its timer for 00:02, then jump.
			if at, err := clk.WaitTimer(step); err != nil || !at.Equal(start.Add(2*time.Minute)) {
				t.Fatalf("next timer %s, %v; want 00:02", at, err)
			}
			clk.Jump(10 * time.Minute) // to 00:11, paused
			for clk.Now().Before(start.Add(14 * time.Minute)) {
				if _, err := clk.AdvanceToNext(step); err != nil {
					t.Fatal(err)
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			var inGap []time.Time
			for _, r := range runs.snapshot() {
				if r.run.At.After(start.Add(2*time.Minute)) && r.run.At.Before(start.Add(11*time.Minute)) {
					inGap = append(inGap, r.run.At)
				}
			}
			if m := s.Stats()["m"].Missed; m < 8 || m > 9 {
				t.Errorf("Missed = %d; want the 8 or 9 ticks from 00:02 to 00:10", m)
			}
			switch policy {
			case scheduler.Skip:
				if len(inGap) != 0 {
					t.Errorf("Skip ran missed ticks %v; want none", inGap)
				}
			case scheduler.RunOnce:
				if len(inGap) != 1 || !inGap[0].Equal(start.Add(10*time.Minute)) {
					t.Errorf("RunOnce ran missed ticks %v; want one catch-up, for 00:10", inGap)
				}
			}
		})
	}
}

// TestFallBehindClaimsTicksStillOnTime: a local Scheduler whose clock
// jumps 2.5 s past a 1 s job's tick (a process that stalled, as a loaded
// machine stalls it) counts the tick whose start deadline passed as missed
// and still runs the next one, whose deadline had not passed: every tick
// either runs or is counted, none is lost silently. It once jumped to the
// first tick after the stall, which lost the one in between.
func TestFallBehindClaimsTicksStillOnTime(t *testing.T) {
	start := mustTime(t, "2026-06-01T00:00:00Z")
	clk := schedulertest.NewClock(start)
	var missed []time.Time
	var mu sync.Mutex
	s := scheduler.New(scheduler.Options{Clock: clk, Logger: hclog.NewNullLogger(), Hooks: scheduler.Hooks{OnMissed: func(_ string, at time.Time) {
		mu.Lock()
		missed = append(missed, at)
		mu.Unlock()
	}}})
	var runs clockRuns
	if err := s.Add(scheduler.Job{Name: "s", Interval: time.Second, Overlap: scheduler.AllowOverlap, Func: runs.fn()}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	step, stepCancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer stepCancel()
	if _, err := clk.AdvanceToNext(step); err != nil { // 00:00:01, on time
		t.Fatal(err)
	}
	if at, err := clk.WaitTimer(step); err != nil || !at.Equal(start.Add(2*time.Second)) {
		t.Fatalf("next timer %s, %v; want 00:00:02", at, err)
	}
	// Stalled until 00:00:03.5: the 00:00:02 tick's deadline (00:00:03)
	// passed, the 00:00:03 tick's (00:00:04) did not.
	clk.Jump(2500 * time.Millisecond)
	for {
		at, err := clk.WaitTimer(step)
		if err != nil {
			t.Fatal(err)
		}
		if !at.Before(start.Add(4 * time.Second)) {
			break
		}
		if _, err := clk.AdvanceToNext(step); err != nil { // fire what is due
			t.Fatal(err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var ran []time.Time
	for _, r := range runs.snapshot() {
		ran = append(ran, r.run.At)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []time.Time{start.Add(time.Second), start.Add(3 * time.Second)}
	if !slices.EqualFunc(ran, want, time.Time.Equal) {
		t.Errorf("ran %v; want 00:00:01 on time and 00:00:03 late, within its deadline", ran)
	}
	if len(missed) != 1 || !missed[0].Equal(start.Add(2*time.Second)) {
		t.Errorf("OnMissed for %v; want 00:00:02 only", missed)
	}
}
