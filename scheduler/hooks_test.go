package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// hookLog records hook calls as lines, in the order they came.
type hookLog struct {
	mu    sync.Mutex
	lines []string
	took  []time.Duration
	errs  []error
	ats   []time.Time
}

func (l *hookLog) add(line string) {
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
}

func (l *hookLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// TestStartAndFinishHooksBracketEachAttempt checks that OnStart and
// OnFinish are called around every call of Func, retries included, with
// the attempt's Run, error and duration.
func TestStartAndFinishHooksBracketEachAttempt(t *testing.T) {
	const work = 20 * time.Millisecond
	errFirst := errors.New("first attempt fails")
	var log hookLog
	s := newScheduler(nil, hclog.NewNullLogger())
	s.hooks = Hooks{
		OnStart: func(r Run) { log.add(fmt.Sprintf("start %d/%d", r.Tick, r.Attempt)) },
		OnFinish: func(r Run, err error, took time.Duration) {
			log.add(fmt.Sprintf("finish %d/%d", r.Tick, r.Attempt))
			log.mu.Lock()
			log.errs = append(log.errs, err)
			log.took = append(log.took, took)
			log.mu.Unlock()
		},
	}
	err := s.Add(Job{Name: "j", Interval: time.Second, Retries: 1, RetryBackoff: time.Millisecond, Func: func(ctx context.Context, r Run) error {
		log.add(fmt.Sprintf("func %d/%d", r.Tick, r.Attempt))
		time.Sleep(work) // the work whose duration OnFinish reports
		if r.Attempt == 1 {
			return errFirst
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, s)
	eventually(t, waitTimeout, func() bool { return len(log.get()) >= 6 }, "hooks not called for two attempts: %q", log.get())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	lines := log.get()[:6]
	var tick int64
	if _, err := fmt.Sscanf(lines[0], "start %d/1", &tick); err != nil {
		t.Fatalf("first call %q; want OnStart of attempt 1", lines[0])
	}
	want := []string{"start %d/1", "func %d/1", "finish %d/1", "start %d/2", "func %d/2", "finish %d/2"}
	for i, w := range want {
		if w = fmt.Sprintf(w, tick); lines[i] != w {
			t.Errorf("call %d is %q; want %q (all: %q)", i, lines[i], w, lines)
		}
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if !errors.Is(log.errs[0], errFirst) || log.errs[1] != nil {
		t.Errorf("OnFinish errors %v; want the first attempt's error, then nil", log.errs[:2])
	}
	for i, took := range log.took[:2] {
		if took < work {
			t.Errorf("OnFinish of attempt %d reports %s; want at least the %s the body took", i+1, took, work)
		}
	}
}

// TestFinishHookSeesPanic checks that a panicking attempt is reported to
// OnFinish as an error wrapping ErrPanic, and that a hook that panics
// itself does not stop the run or the schedule.
func TestFinishHookSeesPanic(t *testing.T) {
	var mu sync.Mutex
	var finished []error
	ran := 0
	s := newScheduler(nil, hclog.NewNullLogger())
	s.hooks = Hooks{
		OnStart: func(Run) { panic("broken metrics") },
		OnFinish: func(_ Run, err error, _ time.Duration) {
			mu.Lock()
			finished = append(finished, err)
			mu.Unlock()
			panic("broken alerting")
		},
	}
	err := s.Add(Job{Name: "j", Interval: 20 * time.Millisecond, Func: func(context.Context, Run) error {
		mu.Lock()
		ran++
		mu.Unlock()
		panic("job bug")
	}})
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, s)
	eventually(t, waitTimeout, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(finished) >= 2 && ran >= 2
	}, "the schedule did not go on past panicking hooks")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !errors.Is(finished[0], ErrPanic) {
		t.Errorf("OnFinish got %v; want an error wrapping ErrPanic", finished[0])
	}
}

// TestSkipHookReportsSkippedTicks checks that OnSkip hears of every tick
// counted in Stats.Skipped, with the tick's instant, and that it may call
// the Scheduler's methods.
func TestSkipHookReportsSkippedTicks(t *testing.T) {
	const interval = 20 * time.Millisecond
	var log hookLog
	release := make(chan struct{})
	var s *Scheduler
	s = newScheduler(nil, hclog.NewNullLogger())
	s.hooks = Hooks{OnSkip: func(job string, at time.Time) {
		_ = s.Stats() // must not deadlock
		log.add(job)
		log.mu.Lock()
		log.ats = append(log.ats, at)
		log.mu.Unlock()
	}}
	err := s.Add(Job{Name: "slow", Interval: interval, Func: func(ctx context.Context, _ Run) error {
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
	eventually(t, waitTimeout, func() bool { return len(log.get()) >= 3 }, "OnSkip not called while the job ran across ticks")
	close(release)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()["slow"]
	lines := log.get()
	if uint64(len(lines)) != st.Skipped {
		t.Errorf("OnSkip called %d times; Stats.Skipped = %d; want them equal", len(lines), st.Skipped)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	for i, at := range log.ats {
		if lines[i] != "slow" || at.UnixNano()%int64(interval) != 0 {
			t.Errorf("OnSkip(%q, %s); want the job's name and a tick instant", lines[i], at)
		}
	}
}

// TestMissedHookReportsFailedClaims checks that a tick whose claim got no
// answer is counted as missed and reported to OnMissed with its instant.
func TestMissedHookReportsFailedClaims(t *testing.T) {
	const interval = 15 * time.Millisecond
	coord := newFakeCoord("me", "me")
	coord.claimErr = errors.New("no quorum")
	var log hookLog
	s := newScheduler(coord, hclog.NewNullLogger())
	s.hooks = Hooks{OnMissed: func(job string, at time.Time) {
		log.add(job)
		log.mu.Lock()
		log.ats = append(log.ats, at)
		log.mu.Unlock()
	}}
	// The claim path gives up on a tick at its StartDeadline. A deadline
	// as short as the interval let a loop that fell behind on a loaded
	// machine count a tick missed by the misfire check first, with no
	// failed claim; at 200 ms that cannot happen here.
	if err := s.Add(Job{Name: "j", Interval: interval, StartDeadline: 200 * time.Millisecond, Func: func(context.Context, Run) error { return nil }}); err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, s)
	eventually(t, waitTimeout, func() bool { return len(log.get()) >= 1 }, "OnMissed not called while claims failed")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()["j"]
	if n := uint64(len(log.get())); st.Missed != n || st.ClaimFailures < n || st.Runs != 0 {
		t.Errorf("Stats = %+v with %d OnMissed calls; want every failed claim missed and reported", st, n)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if at := log.ats[0]; log.lines[0] != "j" || at.UnixNano()%int64(interval) != 0 || at.After(time.Now()) {
		t.Errorf("OnMissed(%q, %s); want the job's name and a past tick instant", log.lines[0], at)
	}
}
