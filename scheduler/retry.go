package scheduler

import (
	"context"
	"time"
)

// defaultRetryBackoff is Job.RetryBackoff's default.
const defaultRetryBackoff = time.Second

// maxRetryBackoff caps the doubling of the wait between retries, unless
// the job's RetryBackoff is longer already.
const maxRetryBackoff = time.Minute

// nextInstant returns the scheduled instant of the job's tick after r's:
// retries of r stop there, so a failing run never eats into the next one.
// It is the one place the retry policy reads the job's schedule. It is
// zero when the schedule has no later instant (At): retries are then bounded
// only by their count and the run's context.
func (j Job) nextInstant(r Run) time.Time { return j.Schedule.Next(r.At) }

// retryPolicy decides, after a failed attempt, whether and when the run is
// attempted again. It belongs to one run and is used by its goroutine only.
type retryPolicy struct {
	left int           // retries not yet used
	wait time.Duration // the wait before the next retry
	cap  time.Duration
	// until is the job's next tick: no retry starts at or after it.
	until time.Time
}

func newRetryPolicy(j Job, r Run) retryPolicy {
	return retryPolicy{left: j.Retries, wait: j.RetryBackoff, cap: max(j.RetryBackoff, maxRetryBackoff), until: j.nextInstant(r)}
}

// next reports how long to wait before the next attempt, and ok false with
// the reason when there is none.
func (p *retryPolicy) next(now time.Time) (wait time.Duration, ok bool, why string) {
	switch {
	case p.left <= 0:
		return 0, false, "no retries left"
	case !p.until.IsZero() && !now.Add(p.wait).Before(p.until):
		return 0, false, "the next tick comes before the next retry"
	}
	wait = p.wait
	p.left--
	p.wait = min(2*p.wait, p.cap)
	return wait, true, ""
}

// waitOrDone waits d, and reports false if ctx ended first.
func waitOrDone(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
