package scheduler

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// attemptLog records each call of a job body: its Run, when it started and
// what its context said.
type attemptLog struct {
	mu       sync.Mutex
	attempts []attemptRecord
}

type attemptRecord struct {
	run         Run
	start       time.Time
	deadline    time.Time
	hasDeadline bool
	ctxErr      error // ctx.Err() when the body returned
}

func (l *attemptLog) add(a attemptRecord) {
	l.mu.Lock()
	l.attempts = append(l.attempts, a)
	l.mu.Unlock()
}

func (l *attemptLog) get() []attemptRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]attemptRecord(nil), l.attempts...)
}

// TestTimeoutEndsTheRunsContext checks that Job.Timeout puts a deadline on
// the run's context, Timeout after the call, and that a job that honours it
// returns context.DeadlineExceeded, counted as an error.
func TestTimeoutEndsTheRunsContext(t *testing.T) {
	const timeout = 40 * time.Millisecond
	var log attemptLog
	s := newScheduler(nil, hclog.NewNullLogger())
	err := s.Add(Job{Name: "slow", Interval: 200 * time.Millisecond, Timeout: timeout, Func: func(ctx context.Context, r Run) error {
		a := attemptRecord{run: r, start: time.Now()}
		a.deadline, a.hasDeadline = ctx.Deadline()
		<-ctx.Done()
		a.ctxErr = ctx.Err()
		log.add(a)
		return ctx.Err()
	}})
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, s)
	eventually(t, waitTimeout, func() bool { return len(log.get()) >= 1 }, "the job never returned")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	a := log.get()[0]
	if !a.hasDeadline {
		t.Fatal("the run's context has no deadline")
	}
	if d := a.deadline.Sub(a.start); d > timeout || d < timeout-20*time.Millisecond {
		t.Errorf("deadline %s after the call; want about %s", d, timeout)
	}
	if !errors.Is(a.ctxErr, context.DeadlineExceeded) {
		t.Errorf("ctx.Err() = %v; want context.DeadlineExceeded", a.ctxErr)
	}
	if st := s.Stats()["slow"]; st.Errors == 0 || !errors.Is(st.LastError, context.DeadlineExceeded) {
		t.Errorf("Stats = %+v; want the timed-out run counted as an error", st)
	}
}

// TestNoTimeoutMeansNoDeadline checks the zero default: no deadline.
func TestNoTimeoutMeansNoDeadline(t *testing.T) {
	var log attemptLog
	s := newScheduler(nil, hclog.NewNullLogger())
	if err := s.Add(Job{Name: "plain", Interval: 20 * time.Millisecond, Func: func(ctx context.Context, r Run) error {
		a := attemptRecord{run: r}
		a.deadline, a.hasDeadline = ctx.Deadline()
		log.add(a)
		return nil
	}}); err != nil {
		t.Fatal(err)
	}
	startRun(t, s)
	eventually(t, waitTimeout, func() bool { return len(log.get()) >= 1 }, "the job never ran")
	if a := log.get()[0]; a.hasDeadline {
		t.Errorf("the run's context has a deadline (%s) without a Timeout", a.deadline)
	}
}
