package scheduler

import (
	"errors"
	"time"

	"github.com/interlockraft/interlock/fsm"
)

// finished ends a granted run: it releases the run's lease, if ref is not
// nil, and reports the run to the cluster's history, both in one update.
// A run without a token (no cluster) is not reported. start is when the
// run started and err what it returned (a recovered panic wraps ErrPanic).
func (s *Scheduler) finished(ref *fsm.RunRef, r Run, start time.Time, err error) {
	s.metricsRunEnded(r, start, err)
	if s.keeper == nil {
		return
	}
	if r.Token == 0 {
		if ref != nil {
			s.keeper.end(*ref)
		}
		return
	}
	h := fsm.HistoryEntry{
		Token:    r.Token,
		Tick:     r.Tick,
		At:       r.At.UnixNano(),
		Start:    start.UnixNano(),
		Duration: int64(time.Since(start)),
	}
	if err != nil {
		h.Result = fsm.ResultError
		if errors.Is(err, ErrPanic) {
			h.Result = fsm.ResultPanic
		}
		// Cut here too, so a huge message does not ride in the log; one
		// byte over the bound lets the state machine mark the cut.
		h.Error = err.Error()
		if len(h.Error) > fsm.MaxErrorBytes {
			h.Error = h.Error[:fsm.MaxErrorBytes+1]
		}
	}
	s.keeper.finish(ref, &fsm.Finished{Job: r.Job, Entry: h})
}
