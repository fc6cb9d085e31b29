package scheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitTimeout bounds every wait for a run; ticks in these tests are tens of
// milliseconds apart, so it is two orders of magnitude of slack.
const waitTimeout = 5 * time.Second

// maxTracker records the highest concurrency a job body observed.
type maxTracker struct{ cur, max atomic.Int32 }

func (m *maxTracker) enter() {
	n := m.cur.Add(1)
	for {
		old := m.max.Load()
		if n <= old || m.max.CompareAndSwap(old, n) {
			return
		}
	}
}

func (m *maxTracker) exit() { m.cur.Add(-1) }

// TestLocalRunsConsecutiveAlignedTicks: a 20ms job runs every tick, each
// run for its aligned instant. The scheduler deliberately jumps ahead
// instead of replaying ticks when it fell a whole interval behind (a paused
// or starved process); a gap is accepted only with proof of that: the run
// before it started at or after the next tick's instant.
func TestLocalRunsConsecutiveAlignedTicks(t *testing.T) {
	const interval = 20 * time.Millisecond
	type timedRun struct {
		Run
		started time.Time
	}
	var mu sync.Mutex
	var runs []timedRun
	s := newScheduler(nil, nil)
	// AllowOverlap and a long StartDeadline leave the jump as the only way
	// a tick can be left out, so every gap can be checked for its cause.
	err := s.Add(Job{Name: "j", Interval: interval, Overlap: AllowOverlap, StartDeadline: time.Second, Func: func(_ context.Context, r Run) error {
		now := time.Now()
		mu.Lock()
		runs = append(runs, timedRun{r, now})
		mu.Unlock()
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	stop := startRun(t, s)
	eventually(t, waitTimeout, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(runs) >= 10
	}, "fewer than 10 runs of a 20ms job")
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	slices.SortFunc(runs, func(a, b timedRun) int { return cmp.Compare(a.Tick, b.Tick) })
	gaps := 0
	for i, r := range runs {
		if r.Job != "j" || r.Node != "" || r.Token != 0 {
			t.Errorf("run %d: %+v; want job j, no node, no token in local mode", i, r.Run)
		}
		if !r.At.Equal(TickAt(interval, r.Tick)) {
			t.Errorf("run %d: At %s is not TickAt(tick %d) = %s", i, r.At, r.Tick, TickAt(interval, r.Tick))
		}
		if r.At.UnixNano()%int64(interval) != 0 {
			t.Errorf("run %d: At %d ns is not aligned to %s", i, r.At.UnixNano(), interval)
		}
		if r.started.Before(r.At.Add(-coalesce)) {
			t.Errorf("run %d started %s before its tick", i, r.At.Sub(r.started))
		}
		if i == 0 {
			continue
		}
		prev := runs[i-1]
		switch {
		case r.Tick == prev.Tick:
			t.Errorf("tick %d ran twice", r.Tick)
		case r.Tick == prev.Tick+1:
		case prev.started.Before(TickAt(interval, prev.Tick+1)):
			t.Errorf("ticks %d..%d left out though tick %d started on time (%s after its instant)",
				prev.Tick+1, r.Tick-1, prev.Tick, prev.started.Sub(prev.At))
		case r.Tick > NextTick(interval, prev.started):
			t.Errorf("after running tick %d late, jumped to %d, beyond the first tick after it started (%d)",
				prev.Tick, r.Tick, NextTick(interval, prev.started))
		default:
			gaps++
		}
	}
	if gaps > 0 {
		t.Logf("%d jumps after the process fell behind by an interval", gaps)
	}
	// The first tick is the first one after Run started.
	if first := runs[0]; first.At.Before(started) {
		t.Errorf("first run for %s, before Run started at %s", first.At, started)
	}
	if got := s.Stats()["j"].Runs; got != uint64(len(runs)) {
		t.Errorf("Stats().Runs = %d, job body ran %d times", got, len(runs))
	}
}

// TestLocalSchedulersAgree starts two local schedulers at different times:
// the ticks both run have the same index at the same instant.
func TestLocalSchedulersAgree(t *testing.T) {
	const interval = 20 * time.Millisecond
	var logA, logB runLog
	a, b := newScheduler(nil, nil), newScheduler(nil, nil)
	if err := a.Add(Job{Name: "j", Interval: interval, Func: logA.record()}); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(Job{Name: "j", Interval: interval, Func: logB.record()}); err != nil {
		t.Fatal(err)
	}
	startRun(t, a)
	eventually(t, waitTimeout, func() bool { return logA.len() >= 2 }, "scheduler A did not run")
	startRun(t, b)
	eventually(t, waitTimeout, func() bool { return logB.len() >= 3 }, "scheduler B did not run")

	byTick := map[int64]time.Time{}
	for _, r := range logA.snapshot() {
		byTick[r.Tick] = r.At
	}
	common := 0
	for _, r := range logB.snapshot() {
		if at, ok := byTick[r.Tick]; ok {
			common++
			if !at.Equal(r.At) {
				t.Errorf("tick %d: A ran it for %s, B for %s", r.Tick, at, r.At)
			}
		}
	}
	if common == 0 {
		t.Errorf("no tick run by both schedulers: A %v, B %v", logA.snapshot(), logB.snapshot())
	}
}

func TestLocalRunWaitsForRunningJobs(t *testing.T) {
	var sawCancel, finished atomic.Bool
	started := make(chan struct{}, 1)
	s := newScheduler(nil, nil)
	err := s.Add(Job{Name: "slow", Interval: 10 * time.Millisecond, Func: func(ctx context.Context, _ Run) error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		sawCancel.Store(true)
		// Some cleanup after cancellation, which Run must wait for.
		time.Sleep(50 * time.Millisecond)
		finished.Store(true)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, s)
	select {
	case <-started:
	case <-time.After(waitTimeout):
		t.Fatal("job never started")
	}
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v after cancel, want nil", err)
	}
	if !sawCancel.Load() {
		t.Error("job body did not observe ctx cancellation")
	}
	if !finished.Load() {
		t.Error("Run returned before the running job finished")
	}
	if isRunning(s) {
		t.Error("scheduler still marked running after Run returned")
	}
}

func TestLocalPanicIsRecovered(t *testing.T) {
	var calls, after atomic.Int32
	s := newScheduler(nil, nil)
	err := s.Add(Job{Name: "p", Interval: 15 * time.Millisecond, Func: func(context.Context, Run) error {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		after.Add(1)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	startRun(t, s)
	eventually(t, waitTimeout, func() bool { return after.Load() >= 3 }, "schedule did not continue after a panic (%d runs after it)", after.Load())
	st := s.Stats()["p"]
	if st.Panics != 1 {
		t.Errorf("Stats().Panics = %d, want 1", st.Panics)
	}
	if st.Runs < 4 {
		t.Errorf("Stats().Runs = %d, want at least 4 (the panicking one included)", st.Runs)
	}
	if st.Errors != 0 {
		t.Errorf("Stats().Errors = %d; a panic counts in Panics only", st.Errors)
	}
	if !errors.Is(st.LastError, ErrPanic) || !strings.Contains(fmt.Sprint(st.LastError), "boom") {
		t.Errorf("Stats().LastError = %v; want an ErrPanic carrying the panic value", st.LastError)
	}
}

func TestLocalErrorDoesNotStopSchedule(t *testing.T) {
	var calls atomic.Int32
	s := newScheduler(nil, nil)
	err := s.Add(Job{Name: "e", Interval: 15 * time.Millisecond, Func: func(context.Context, Run) error {
		calls.Add(1)
		return errors.New("job failed")
	}})
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	startRun(t, s)
	eventually(t, waitTimeout, func() bool { return s.Stats()["e"].Errors >= 4 }, "failing job stopped being run after %d runs (%+v)", calls.Load(), s.Stats()["e"])
	st := s.Stats()["e"]
	if st.Panics != 0 || st.ClaimFailures != 0 || st.Runs < st.Errors {
		t.Errorf("Stats() = %+v; want as many runs as errors, and no panics or failed claims", st)
	}
	if st.LastError == nil || st.LastError.Error() != "job failed" {
		t.Errorf("Stats().LastError = %v; want the job's error", st.LastError)
	}
	if st.LastRun.Before(before) || st.LastRun.After(time.Now()) {
		t.Errorf("Stats().LastRun = %s; want a time since the scheduler started at %s", st.LastRun, before)
	}
}

func TestLocalSkipIfRunning(t *testing.T) {
	release := make(chan struct{})
	var m maxTracker
	var calls atomic.Int32
	s := newScheduler(nil, nil)
	err := s.Add(Job{Name: "block", Interval: 10 * time.Millisecond, Func: func(ctx context.Context, _ Run) error {
		if calls.Add(1) == 1 {
			m.enter()
			defer m.exit()
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		}
		m.enter()
		m.exit()
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	startRun(t, s)
	eventually(t, waitTimeout, func() bool { return s.Stats()["block"].Skipped >= 5 }, "ticks were not skipped while the job ran")
	if n := calls.Load(); n != 1 {
		t.Errorf("job started %d times while its first run was still going; want 1", n)
	}
	if st := s.Stats()["block"]; st.Runs != 1 {
		t.Errorf("Stats() = %+v while blocked; want exactly 1 run", st)
	}
	close(release)
	eventually(t, waitTimeout, func() bool { return calls.Load() >= 3 }, "job not run again after its long run finished")
	if got := m.max.Load(); got != 1 {
		t.Errorf("max concurrent runs %d with SkipIfRunning, want 1", got)
	}
}

func TestLocalAllowOverlap(t *testing.T) {
	release := make(chan struct{})
	var m maxTracker
	s := newScheduler(nil, nil)
	err := s.Add(Job{Name: "o", Interval: 10 * time.Millisecond, Overlap: AllowOverlap, Func: func(ctx context.Context, _ Run) error {
		m.enter()
		defer m.exit()
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, s)
	eventually(t, waitTimeout, func() bool { return m.max.Load() >= 3 }, "runs did not overlap (max %d concurrent)", m.max.Load())
	if st := s.Stats()["o"]; st.Skipped != 0 {
		t.Errorf("AllowOverlap skipped %d ticks", st.Skipped)
	}
	close(release)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := m.cur.Load(); n != 0 {
		t.Errorf("%d runs still going after Run returned", n)
	}
}

func TestLocalAddAfterRunStarted(t *testing.T) {
	var log runLog
	s := newScheduler(nil, nil)
	startRun(t, s)
	eventually(t, waitTimeout, func() bool { return isRunning(s) }, "Run did not start")
	if err := s.Add(Job{Name: "late", Interval: 15 * time.Millisecond, Func: log.record()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitTimeout, func() bool { return log.len() >= 3 }, "job added after Run started was not run")
	// A second job added later runs too, alongside the first.
	var log2 runLog
	if err := s.Add(Job{Name: "later", Interval: 15 * time.Millisecond, Func: log2.record()}); err != nil {
		t.Fatal(err)
	}
	before := log.len()
	eventually(t, waitTimeout, func() bool { return log2.len() >= 3 && log.len() >= before+3 }, "jobs did not both keep running")
}

func TestLocalRemoveStopsRuns(t *testing.T) {
	const interval = 10 * time.Millisecond
	var gone, probe runLog
	s := newScheduler(nil, nil)
	if err := s.Add(Job{Name: "gone", Interval: interval, Func: gone.record()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(Job{Name: "probe", Interval: interval, Func: probe.record()}); err != nil {
		t.Fatal(err)
	}
	startRun(t, s)
	eventually(t, waitTimeout, func() bool { return gone.len() >= 2 }, "job did not run")
	if err := s.Remove("gone"); err != nil {
		t.Fatal(err)
	}
	removedAt := time.Now()
	if _, ok := s.Stats()["gone"]; ok {
		t.Error("removed job still in Stats")
	}
	// Let the scheduler go through several more ticks of the same interval.
	p := probe.len()
	eventually(t, waitTimeout, func() bool { return probe.len() >= p+5 }, "probe job stopped")
	// A run already started when Remove was called may still happen; none
	// for a tick after Remove.
	limit := NextTick(interval, removedAt)
	for _, r := range gone.snapshot() {
		if r.Tick > limit {
			t.Errorf("removed job ran tick %d, after Remove (tick %d)", r.Tick, limit-1)
		}
	}
}

func TestRunTwice(t *testing.T) {
	var log runLog
	s := newScheduler(nil, nil)
	if err := s.Add(Job{Name: "j", Interval: 10 * time.Millisecond, Func: log.record()}); err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, s)
	eventually(t, waitTimeout, func() bool { return log.len() >= 1 }, "job did not run")

	errc := make(chan error, 1)
	go func() { errc <- s.Run(context.Background()) }()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("second concurrent Run returned nil; want an error")
		}
	case <-time.After(waitTimeout):
		t.Fatal("second concurrent Run did not return at once")
	}
	// The first Run is unaffected.
	n := log.len()
	eventually(t, waitTimeout, func() bool { return log.len() >= n+3 }, "first Run stopped after the second failed")
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// Sequentially, Run may be called again; it picks up after the ticks
	// already run and never repeats one.
	n = log.len()
	stop2 := startRun(t, s)
	eventually(t, waitTimeout, func() bool { return log.len() >= n+3 }, "restarted Run did not run the job")
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for _, r := range log.snapshot() {
		if seen[r.Tick] {
			t.Errorf("tick %d ran twice", r.Tick)
		}
		seen[r.Tick] = true
	}
}

// TestRunWithCancelledContext returns at once, running nothing.
func TestRunWithCancelledContext(t *testing.T) {
	var calls atomic.Int32
	s := newScheduler(nil, nil)
	if err := s.Add(Job{Name: "j", Interval: time.Hour, Func: func(context.Context, Run) error { calls.Add(1); return nil }}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run with a cancelled context did not return")
	}
	if calls.Load() != 0 {
		t.Error("job ran")
	}
}

// TestManyJobsDifferentIntervals runs jobs with different intervals side by
// side; each keeps its own aligned, gap-free schedule.
func TestManyJobsDifferentIntervals(t *testing.T) {
	intervals := map[string]time.Duration{"a": 10 * time.Millisecond, "b": 25 * time.Millisecond, "c": 40 * time.Millisecond}
	var mu sync.Mutex
	runs := map[string][]Run{}
	s := newScheduler(nil, nil)
	for name, iv := range intervals {
		err := s.Add(Job{Name: name, Interval: iv, Func: func(_ context.Context, r Run) error {
			mu.Lock()
			runs[r.Job] = append(runs[r.Job], r)
			mu.Unlock()
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	stop := startRun(t, s)
	eventually(t, waitTimeout, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(runs["a"]) >= 4 && len(runs["b"]) >= 4 && len(runs["c"]) >= 4
	}, "not every job ran 4 times")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for name, iv := range intervals {
		rs := runs[name]
		for i, r := range rs {
			if r.Job != name || !r.At.Equal(TickAt(iv, r.Tick)) {
				t.Errorf("job %s run %d: %+v not at its own tick", name, i, r)
			}
			if i > 0 && r.Tick <= rs[i-1].Tick {
				t.Errorf("job %s: tick %d after %d", name, r.Tick, rs[i-1].Tick)
			}
		}
	}
}
