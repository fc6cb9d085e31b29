package scheduler

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"
)

// execute runs one granted run on its own goroutine: it calls the job body,
// and again after an error while the job's retry policy allows, all inside
// the run's grant (ctx is the run's context, which ends if its lease is
// lost). A panic ends the run: it is logged, counted and not retried,
// because a panicking body is a bug that a retry repeats, and it may have
// left its own state half-changed.
func (s *Scheduler) execute(ctx context.Context, js *jobState, r Run) error {
	// The policy is made at the first failure: it reads the schedule, and
	// a run that succeeds at once, as most do, should start with no more
	// work than it needs (many start together on the same instant).
	var policy *retryPolicy
	for r.Attempt = 1; ; r.Attempt++ {
		err, panicked := s.attempt(ctx, js, r)
		if err == nil || panicked {
			return err
		}
		if ctx.Err() != nil {
			s.failed(js, r, err, "the run's context ended")
			return err
		}
		if policy == nil {
			p := newRetryPolicy(js.job, r)
			policy = &p
		}
		wait, ok, why := policy.next(time.Now())
		if !ok {
			s.failed(js, r, err, why)
			return err
		}
		s.logger.Debug("job failed, will retry", "job", r.Job, "tick", r.Tick, "token", r.Token, "attempt", r.Attempt, "wait", wait, "error", err)
		if !waitOrDone(ctx, wait) {
			s.failed(js, r, err, "the run's context ended")
			return err
		}
		js.retries.Add(1)
	}
}

// attempt calls the job body once, between the OnStart and OnFinish
// hooks. A panic is recovered, logged, counted and reported here, where
// its stack is still at hand; panicked says so.
func (s *Scheduler) attempt(ctx context.Context, js *jobState, r Run) (err error, panicked bool) {
	s.hookStart(r)
	began := time.Now()
	defer func() {
		if p := recover(); p != nil {
			js.panics.Add(1)
			err = fmt.Errorf("%w: job %q tick %d token %d%s: %v", ErrPanic, r.Job, r.Tick, r.Token, attemptNote(js.job, r), p)
			panicked = true
			js.setLastError(err)
			s.logger.Error("job panicked", "job", r.Job, "tick", r.Tick, "token", r.Token, "attempt", r.Attempt, "panic", p, "stack", string(debug.Stack()))
			s.report(r.Job, err)
		}
		s.hookFinish(r, err, time.Since(began))
	}()
	if t := js.job.Timeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	if s.logger.IsDebug() { // the arguments cost allocations even when not logged
		s.logger.Debug("run", "job", r.Job, "tick", r.Tick, "token", r.Token, "attempt", r.Attempt)
	}
	return js.job.Func(ctx, r), false
}

// failed records a run whose last attempt returned err; why says why it was
// not retried, if the job has retries.
func (s *Scheduler) failed(js *jobState, r Run, err error, why string) {
	js.errors.Add(1)
	js.setLastError(err)
	if js.job.Retries > 0 {
		s.logger.Warn("job failed", "job", r.Job, "tick", r.Tick, "token", r.Token, "attempt", r.Attempt, "gave_up", why, "error", err)
	} else {
		s.logger.Warn("job failed", "job", r.Job, "tick", r.Tick, "token", r.Token, "error", err)
	}
	s.report(r.Job, fmt.Errorf("scheduler: job %q tick %d token %d%s: %w", r.Job, r.Tick, r.Token, attemptNote(js.job, r), err))
}

// attemptNote names the attempt in an error, for jobs that retry.
func attemptNote(j Job, r Run) string {
	if j.Retries == 0 {
		return ""
	}
	return fmt.Sprintf(" attempt %d of at most %d", r.Attempt, j.Retries+1)
}
