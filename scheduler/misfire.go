package scheduler

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/interlockraft/interlock/fsm"
)

// Misfire says what happens to a job's ticks that passed with no run on
// any node.
type Misfire int

const (
	// Skip forgets missed ticks: the job next runs at its next scheduled
	// instant. It is the default, and what a Scheduler always did.
	Skip Misfire = iota
	// RunOnce runs the newest missed tick once, as soon as the loss is
	// seen, if that tick is at most Job.MisfireWindow old; older ones are
	// forgotten. However many ticks were missed, there is at most one
	// catch-up run, never a storm of them. The catch-up run is a tick
	// like any other: its Run.At is the missed instant, it is granted to
	// one node only, with its own fencing token.
	RunOnce
)

// String returns the policy's name.
func (m Misfire) String() string {
	switch m {
	case Skip:
		return "skip"
	case RunOnce:
		return "run-once"
	default:
		return "misfire(" + strconv.Itoa(int(m)) + ")"
	}
}

// How a missed tick is seen:
//
//   - With a cluster, from the replicated state: the job's last granted
//     instant (LastGrant) against the schedule's instants since. Every
//     instant after the last grant whose start deadline has passed ran
//     nowhere. A node checks this when it starts scheduling a job (Run,
//     or Add while Run runs), which is what finds the ticks lost while
//     the whole cluster was down or the job ran nowhere, and when its own
//     loop fell behind a tick's deadline (a paused process).
//   - Without a cluster, only when the loop fell behind: nothing is
//     remembered across restarts.
//
// Each node counts what it sees itself, once per instant (missedUpTo).

// checkMissedLocked counts the job's instants in (from, now − StartDeadline]
// that the cluster never granted as missed, and, under RunOnce, returns a
// claim for the newest of them if it is within MisfireWindow (without a
// cluster, starts its run instead). from zero means "since the last grant",
// and without a grant (a new job) nothing is missed. s.mu is held.
func (s *Scheduler) checkMissedLocked(ctx context.Context, js *jobState, from, now time.Time) (pendingClaim, bool) {
	j := js.job
	if s.coord != nil {
		st, ok := s.coord.LastGrant(j.Name)
		switch {
		case ok:
			from = later(from, time.Unix(0, st.LastAt))
		case from.IsZero():
			return pendingClaim{}, false
		}
		// The cluster forgets what is older than this; so does this count.
		from = later(from, now.Add(-MaxStartDeadline))
	}
	from = later(from, js.missedUpTo)
	upto := now.Add(-j.StartDeadline)
	n, newest := instantsIn(j.Schedule, from, upto)
	if n == 0 {
		return pendingClaim{}, false
	}
	js.missedUpTo = newest
	s.missed(js, newest, n)
	if j.Misfire != RunOnce || now.Sub(newest) > j.MisfireWindow {
		return pendingClaim{}, false
	}
	if (j.Overlap == SkipIfRunning && js.active.Load() > 0) || s.pausedJob(j.Name) {
		return pendingClaim{}, false
	}
	s.logger.Debug("catch-up run for a missed tick", "job", j.Name, "tick", j.tickOf(newest), "at", newest)
	if s.coord == nil {
		s.start(ctx, js, Run{Job: j.Name, Tick: j.tickOf(newest), At: newest})
		return pendingClaim{}, false
	}
	c := fsm.Claim{
		Job:      j.Name,
		Tick:     j.tickOf(newest),
		At:       newest.UnixNano(),
		Deadline: newest.Add(j.MisfireWindow).UnixNano(),
	}
	if s.keeper != nil && j.Overlap == SkipIfRunning {
		c.Exclusive = true
		c.LeaseTTL = int64(j.RunLease)
	}
	return pendingClaim{js: js, claim: c}, true
}

// missed records that n ticks of the job, the newest at instant, passed
// with no run: it counts them in Stats.Missed, logs them and reports them
// to Options.OnError wrapped in ErrMissed, and queues Hooks.OnMissed. It
// is where the misfire check announces missed ticks. s.mu may be held: it must not
// block.
func (s *Scheduler) missed(js *jobState, instant time.Time, n uint64) {
	s.noteMissed(js, instant, n)
	name := js.job.Name
	s.logger.Warn("ticks missed: no node ran them", "job", name, "missed", n, "tick", js.job.tickOf(instant), "at", instant, "misfire", js.job.Misfire)
	err := fmt.Errorf("%w: job %q: %d tick(s) ran nowhere, the newest at %s; misfire policy %s", ErrMissed, name, n, instant.Format(time.RFC3339Nano), js.job.Misfire)
	if s.onError == nil {
		return
	}
	// Not under s.mu: OnError may call the Scheduler's methods. Only the
	// loop calls missed, so Run has not begun waiting for s.runs.
	s.runs.Add(1)
	go func() {
		defer s.runs.Done()
		s.report(name, err)
	}()
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
