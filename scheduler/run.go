package scheduler

import (
	"context"
	"fmt"
	"runtime/debug"
)

// execute calls the job body for one granted run, turning a panic into a
// log line. It runs on the run's own goroutine.
func (s *Scheduler) execute(ctx context.Context, js *jobState, r Run) {
	defer func() {
		if p := recover(); p != nil {
			js.panics.Add(1)
			err := fmt.Errorf("%w: job %q tick %d token %d: %v", ErrPanic, r.Job, r.Tick, r.Token, p)
			js.setLastError(err)
			s.logger.Error("job panicked", "job", r.Job, "tick", r.Tick, "token", r.Token, "panic", p, "stack", string(debug.Stack()))
			s.report(r.Job, err)
		}
	}()
	if t := js.job.Timeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	s.logger.Debug("run", "job", r.Job, "tick", r.Tick, "token", r.Token)
	if err := js.job.Func(ctx, r); err != nil {
		js.errors.Add(1)
		js.setLastError(err)
		s.logger.Warn("job failed", "job", r.Job, "tick", r.Tick, "token", r.Token, "error", err)
		s.report(r.Job, fmt.Errorf("scheduler: job %q tick %d token %d: %w", r.Job, r.Tick, r.Token, err))
	}
}
