package scheduler

import (
	"context"
	"time"

	"github.com/interlockraft/interlock/fsm"
	"github.com/interlockraft/interlock/internal/seam"
)

// runNowPoll is how often a Scheduler looks again at the run-now requests
// in its node's state while any is pending, to claim one once its fallback
// delay or retry wait has passed. With none pending it waits for the state
// machine to record one (seam.Controller.RunNowChanged) instead: an idle
// node that polled every 50 ms spent about 0.6% of a core on it.
const runNowPoll = 50 * time.Millisecond

// runNowRetry is how long a node waits before claiming the same request
// again, when the first claim was refused (say, the job's previous run
// still held its lease) or got no answer.
const runNowRetry = 250 * time.Millisecond

// runNowSeen is what a Scheduler remembers of one pending request.
type runNowSeen struct {
	id uint64
	// first is when this node first saw the request, which its fallback
	// delay counts from; last is when it last claimed it.
	first, last time.Time
}

// watchRunNow claims the run-now requests of this Scheduler's jobs until
// ctx ends. Each request is a tick at its own instant, named by the
// negated request ID: the nodes that registered the job rank themselves
// for it by rendezvous, the first claims it at once, and the others after
// their fallback delays if it is still pending, as with a scheduled tick.
// The state machine grants it at most once.
func (s *Scheduler) watchRunNow(ctx context.Context, ctl seam.Controller) {
	poll := time.NewTimer(runNowPoll)
	defer poll.Stop()
	seen := make(map[string]runNowSeen)
	for {
		// The channel is taken before the requests are read, so one
		// recorded in between still wakes the wait below.
		changed := ctl.RunNowChanged()
		reqs := ctl.RunNowRequests()
		for job, sn := range seen {
			if r, ok := reqs[job]; !ok || r.ID != sn.id {
				delete(seen, job)
			}
		}
		if len(reqs) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
			continue
		}
		now := time.Now()
		var batch []pendingClaim
		s.mu.Lock()
		for job, req := range reqs {
			js := s.jobs[job]
			if js == nil || js.removed.Load() || !s.eligible(js.job) {
				continue
			}
			sn, ok := seen[job]
			if !ok {
				sn = runNowSeen{id: req.ID, first: now}
			}
			if !sn.last.IsZero() && now.Sub(sn.last) < runNowRetry {
				continue
			}
			tick := -int64(req.ID)
			if now.Sub(sn.first) < time.Duration(positionOf(job, tick, s.coord.Candidates(job), s.node))*js.job.FallbackDelay {
				seen[job] = sn
				continue
			}
			sn.last = now
			seen[job] = sn
			c := fsm.Claim{Job: job, Tick: tick, At: req.At, Deadline: req.Deadline()}
			if s.keeper != nil && js.job.Overlap == SkipIfRunning {
				c.Exclusive = true
				c.LeaseTTL = int64(js.job.RunLease)
			}
			batch = append(batch, pendingClaim{js: js, claim: c, runNow: true})
		}
		s.mu.Unlock()
		if len(batch) > 0 {
			s.runs.Add(1)
			go func() {
				defer s.runs.Done()
				s.claim(ctx, batch)
			}()
		}
		poll.Reset(runNowPoll)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-poll.C:
		}
	}
}
