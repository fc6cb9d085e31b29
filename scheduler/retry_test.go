package scheduler

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/scheduler/schedulertest"
)

// newFakeScheduler returns a Scheduler on a schedulertest fake, which keeps
// run leases as a real node does.
func newFakeScheduler(t *testing.T, opts Options) (*Scheduler, *schedulertest.Cluster) {
	t.Helper()
	c := schedulertest.NewCluster("me", schedulertest.WithLogger(hclog.NewNullLogger()))
	opts.Cluster = c
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	return New(opts), c
}

// byTick groups attempts by the tick of their run, in the order seen.
func byTick(as []attemptRecord) (ticks []int64, runs map[int64][]attemptRecord) {
	runs = map[int64][]attemptRecord{}
	for _, a := range as {
		if _, ok := runs[a.run.Tick]; !ok {
			ticks = append(ticks, a.run.Tick)
		}
		runs[a.run.Tick] = append(runs[a.run.Tick], a)
	}
	return ticks, runs
}

// TestRetriesKeepTokenAndBackOff checks that a failed run is attempted again
// inside the same grant (same tick and Token, Attempt counting from 1), that
// the waits double from RetryBackoff, and what Stats and OnError say.
func TestRetriesKeepTokenAndBackOff(t *testing.T) {
	const backoff = 30 * time.Millisecond
	errFlaky := errors.New("flaky dependency")
	tests := []struct {
		name      string
		succeedAt int // attempt that returns nil; 0 = none
		attempts  int // expected calls of the body for the tick
		errors    uint64
	}{
		{"gives up after Retries", 0, 4, 1},
		{"stops at the first success", 3, 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log attemptLog
			var elog errorLog
			s, _ := newFakeScheduler(t, Options{OnError: elog.add})
			err := s.Add(Job{Name: "j", Interval: time.Second, Retries: 3, RetryBackoff: backoff, Func: func(ctx context.Context, r Run) error {
				log.add(attemptRecord{run: r, start: time.Now()})
				if r.Attempt == tt.succeedAt {
					return nil
				}
				return errFlaky
			}})
			if err != nil {
				t.Fatal(err)
			}
			stop := startRun(t, s)
			eventually(t, waitTimeout, func() bool {
				_, runs := byTick(log.get())
				for _, as := range runs {
					if len(as) >= tt.attempts {
						return true
					}
				}
				return false
			}, "no run reached %d attempts: %d calls", tt.attempts, len(log.get()))
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			ticks, runs := byTick(log.get())
			as := runs[ticks[0]]
			if len(as) != tt.attempts {
				t.Fatalf("first run made %d attempts; want %d", len(as), tt.attempts)
			}
			wait := backoff
			for i, a := range as {
				if a.run.Attempt != i+1 {
					t.Errorf("call %d has Attempt %d; want %d", i, a.run.Attempt, i+1)
				}
				if a.run.Token == 0 || a.run.Token != as[0].run.Token {
					t.Errorf("attempt %d has token %d; want the first attempt's %d (non-zero)", i+1, a.run.Token, as[0].run.Token)
				}
				if i == 0 {
					continue
				}
				if gap := a.start.Sub(as[i-1].start); gap < wait {
					t.Errorf("attempt %d came %s after the previous; want at least %s", i+1, gap, wait)
				}
				wait *= 2
			}
			st := s.Stats()["j"]
			if want := uint64(tt.attempts - 1); st.Retries < want {
				t.Errorf("Stats.Retries = %d; want at least %d", st.Retries, want)
			}
			if tt.errors == 0 {
				if len(ticks) == 1 && st.Errors != 0 {
					t.Errorf("Stats.Errors = %d; a run that succeeded on a retry is not an error", st.Errors)
				}
				return
			}
			if st.Errors < tt.errors {
				t.Errorf("Stats.Errors = %d; want the failed run counted", st.Errors)
			}
			reported := elog.get("j")
			if len(reported) == 0 {
				t.Fatal("OnError not called for the failed run")
			}
			if !errors.Is(reported[0], errFlaky) || !strings.Contains(reported[0].Error(), "attempt 4 of at most 4") {
				t.Errorf("OnError got %v; want the job's error, naming the last attempt", reported[0])
			}
			if len(ticks) == 1 && len(reported) != 1 {
				t.Errorf("OnError called %d times for one run; want once, for its last attempt", len(reported))
			}
		})
	}
}

// TestRetriesStopAtNextTick checks that retries never run into the job's
// next tick: every attempt of a run starts before the next tick's instant,
// and that tick starts a fresh run, with Attempt 1 and a new token.
func TestRetriesStopAtNextTick(t *testing.T) {
	const interval = 300 * time.Millisecond
	var log attemptLog
	s, _ := newFakeScheduler(t, Options{})
	j := Job{Name: "j", Interval: interval, Retries: 100, RetryBackoff: 20 * time.Millisecond, Func: func(ctx context.Context, r Run) error {
		log.add(attemptRecord{run: r, start: time.Now()})
		return errors.New("always fails")
	}}
	if err := s.Add(j); err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, s)
	eventually(t, 10*time.Second, func() bool {
		ticks, runs := byTick(log.get())
		return len(ticks) >= 3 && len(runs[ticks[0]]) >= 2
	}, "want a retried run followed by two more runs; got %d calls", len(log.get()))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ticks, runs := byTick(log.get())
	for _, k := range ticks[:len(ticks)-1] {
		as := runs[k]
		next := TickAt(interval, k+1)
		if as[0].run.Attempt != 1 {
			t.Errorf("run of tick %d began with Attempt %d; want 1", k, as[0].run.Attempt)
		}
		if len(as) > 100 {
			t.Errorf("run of tick %d made %d attempts in one interval", k, len(as))
		}
		for _, a := range as {
			if !a.start.Before(next) {
				t.Errorf("attempt %d of tick %d started %s after the next tick", a.run.Attempt, k, a.start.Sub(next))
			}
		}
	}
	first, second := runs[ticks[0]], runs[ticks[1]]
	if second[0].run.Token <= first[0].run.Token {
		t.Errorf("the next tick's run has token %d; want a new one above %d", second[0].run.Token, first[0].run.Token)
	}
}

// TestRetriesStopWhenLeaseIsLost checks that a run whose lease was lost is
// not attempted again: the retry would run outside its grant.
func TestRetriesStopWhenLeaseIsLost(t *testing.T) {
	var log attemptLog
	s, c := newFakeScheduler(t, Options{})
	err := s.Add(Job{Name: "j", Interval: time.Second, RunLease: 150 * time.Millisecond, Retries: 5, RetryBackoff: 10 * time.Millisecond, Func: func(ctx context.Context, r Run) error {
		log.add(attemptRecord{run: r, start: time.Now()})
		if r.Attempt == 1 {
			c.LoseLease("j")
			<-ctx.Done()
			return ctx.Err()
		}
		return errors.New("a retry ran")
	}})
	if err != nil {
		t.Fatal(err)
	}
	startRun(t, s)
	eventually(t, waitTimeout, func() bool { return s.Stats()["j"].Errors >= 1 }, "the run never ended")
	ticks, runs := byTick(log.get())
	if as := runs[ticks[0]]; len(as) != 1 {
		t.Errorf("the run made %d attempts after its lease was lost; want 1", len(as))
	}
	if st := s.Stats()["j"]; st.Retries != 0 || !errors.Is(st.LastError, context.Canceled) {
		t.Errorf("Stats = %+v; want no retries and the cancellation as LastError", st)
	}
}

// TestRetryWaitEndsWithRun checks that a run waiting to retry stops at once
// when the Scheduler stops, rather than sleeping out its backoff.
func TestRetryWaitEndsWithRun(t *testing.T) {
	const backoff = 800 * time.Millisecond
	failed := make(chan struct{}, 1)
	var log attemptLog
	s := newScheduler(nil, hclog.NewNullLogger())
	err := s.Add(Job{Name: "j", Interval: 2 * time.Second, Retries: 3, RetryBackoff: backoff, Func: func(ctx context.Context, r Run) error {
		log.add(attemptRecord{run: r})
		select {
		case failed <- struct{}{}:
		default:
		}
		return errors.New("fails")
	}})
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, s)
	select {
	case <-failed:
	case <-time.After(10 * time.Second):
		t.Fatal("the job never ran")
	}
	began := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took >= backoff/2 {
		t.Errorf("Run took %s to return while a run waited to retry; want it to stop the wait", took)
	}
	if n := len(log.get()); n != 1 {
		t.Errorf("%d attempts; want 1, the retry cancelled", n)
	}
}

// TestPanicIsNotRetried checks the documented choice: a panic ends the run.
func TestPanicIsNotRetried(t *testing.T) {
	var log attemptLog
	s := newScheduler(nil, hclog.NewNullLogger())
	err := s.Add(Job{Name: "j", Interval: time.Second, Retries: 3, RetryBackoff: time.Millisecond, Func: func(ctx context.Context, r Run) error {
		log.add(attemptRecord{run: r})
		panic("bug")
	}})
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, s)
	eventually(t, waitTimeout, func() bool { return s.Stats()["j"].Panics >= 1 }, "the job never panicked")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ticks, runs := byTick(log.get())
	if as := runs[ticks[0]]; len(as) != 1 {
		t.Errorf("a panicking run made %d attempts; want 1", len(as))
	}
	if st := s.Stats()["j"]; st.Retries != 0 || st.Errors != 0 {
		t.Errorf("Stats = %+v; want a panic counted in Panics only, with no retries", st)
	}
}
