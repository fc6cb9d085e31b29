package scheduler

import (
	"context"
	"slices"
	"time"
)

// Claiming ahead. A tick's claim goes through the leader, a Raft commit
// (an fsync on each of a quorum) and the state machine of every node
// before its run may start. With tens of thousands of jobs on one
// instant, that is a few big entries committed one after the other on a
// busy machine, and a run started when its claim came back started tens
// of milliseconds late. So, with a cluster, a node sends each tick's claim
// a lead ahead of the tick's start, about three times as long as its recent
// claims took to be answered, and starts the granted runs at their start,
// not before. A node whose claims come back in well under a millisecond
// claims at the start, as it always did.
//
// A grant is the same whenever it is asked: the state machine accepts a
// claim up to the claim's start-deadline window early, keeps the lease of
// a SkipIfRunning run from the grant on, and gives each (job, instant) to
// one node only. The lead is bounded so that neither changes what a job
// sees: it is at most a quarter of the job's StartDeadline (so a clock
// ahead of the leader's by up to three quarters of it is still not
// refused as early) and of its RunLease (so a lease held from the grant
// still lasts most of its length after the start), at most maxLead, and
// at most a quarter of the gap since the job's instant before (inOrder),
// so that one job's ticks are still claimed one after the other.
// A SkipIfRunning job whose previous run is still going when its claim
// would be sent decides at the tick's start instead, as it did without a
// lead, rather than skipping a tick its run might have finished in time
// for. A pause that commits between a grant and its start does not stop
// that run, as one committing just after a grant never did; the lead only
// widens that window to at most the lead.

// maxLead bounds how far ahead of a tick's start its claim is sent.
const maxLead = time.Second

// leadFactor is the lead in claim times. A node's claim takes longer
// when it meets the other nodes' claims of the same instant at the leader
// than when it does not, and which happens changes from tick to tick.
const leadFactor = 3

// minLead is the smallest lead worth having: below it, ticks are claimed
// at their start.
const minLead = time.Millisecond

// noteClaimTime records how long a claim took to be answered. The
// estimate is a decaying maximum that at most doubles (plus minLead) per
// claim and falls back by a thirty-second per claim (with one claim per
// tick, by half in about twenty ticks). The cap on growth is for
// elections: a claim that waited out a leader change took a second, and
// taking that as the estimate sent every tick's claim the largest lead
// for the next twenty ticks, so a node killed in that window took its
// grant, and the job's run lease, with it more often (the chaos soak
// missed 11 of 602 ticks of its 1 s job instead of 3). Claims that are
// slow tick after tick, as with tens of thousands of jobs on one instant,
// reach their lead within a few ticks. When it has grown by a
// quarter since the queued ticks were last placed, they are placed again
// (advanceTicks): each tick is queued when the one before it is claimed,
// so otherwise a lead learnt from a slow claim would reach only the tick
// after next, and the first ticks of a big schedule would all start late.
func (s *Scheduler) noteClaimTime(d time.Duration) {
	var est int64
	for {
		old := s.claimTime.Load()
		est = int64(d) // the first estimate: the registration's time
		if old != 0 {
			est = max(min(est, 2*old+int64(minLead)), old-old/32)
		}
		if s.claimTime.CompareAndSwap(old, est) {
			break
		}
	}
	s.mu.Lock()
	placed := s.placedFor
	s.placedFor = min(placed, est)
	grown := est > placed+placed/4+int64(minLead)
	if grown {
		s.placedFor = est
		s.advanceTicksLocked()
	}
	s.mu.Unlock()
	if grown {
		s.poke()
	}
}

// advanceTicksLocked moves every queued tick that is due later than its
// current lead allows to its start minus that lead. s.mu is held.
func (s *Scheduler) advanceTicksLocked() {
	if s.queue.len() == 0 {
		return
	}
	evs := s.queue.all()
	moved := false
	for i := range evs {
		ev := &evs[i]
		if ev.fallback || ev.check || ev.catchUp || ev.stale || ev.atStart {
			continue
		}
		if at := startOf(ev.js, ev.inst).Add(-inOrder(s.leadFor(ev.js.job), ev.js.gap)); at.Before(ev.at) {
			if s.leadOf != nil {
				s.leadOf[ev.inst.UnixNano()] = leadFactor * time.Duration(s.claimTime.Load())
			}
			ev.at, moved = at, true
		}
	}
	if !moved {
		return
	}
	s.queue.reset()
	for _, ev := range evs {
		s.queue.push(ev)
	}
}

// leadAtLocked returns the lead for job j's tick at instant: the lead
// the first tick queued for that instant got, so that the ticks of every
// job sharing an instant are claimed in one pass and one Claim call even
// when the estimate moved between their queueings. s.mu is held.
func (s *Scheduler) leadAtLocked(j Job, instant time.Time) time.Duration {
	if s.coord == nil {
		return 0
	}
	key := instant.UnixNano()
	base, ok := s.leadOf[key]
	if !ok {
		if len(s.leadOf) >= s.leadPruneAt {
			s.pruneLeadsLocked()
		}
		base = leadFactor * time.Duration(s.claimTime.Load())
		s.leadOf[key] = base
	}
	return s.capLead(j, base)
}

// leadPruneMin is the size of the table of leads per instant below which
// it is never pruned.
const leadPruneMin = 256

// pruneLeadsLocked forgets the leads of instants already past; upcoming
// ones keep theirs. The next prune comes once the table has doubled, so
// that jobs with many distinct upcoming instants (say, thousands of cron
// schedules) do not rescan the table for every new one. s.mu is held.
func (s *Scheduler) pruneLeadsLocked() {
	if s.leadOf == nil {
		s.leadOf = make(map[int64]time.Duration)
	}
	now := s.clock.Now().UnixNano()
	for at := range s.leadOf {
		if at < now {
			delete(s.leadOf, at)
		}
	}
	s.leadPruneAt = max(leadPruneMin, 2*len(s.leadOf))
}

// leadFor returns how long before a tick's start of job j its claim is
// sent, from the current estimate: zero without a cluster.
func (s *Scheduler) leadFor(j Job) time.Duration {
	if s.coord == nil {
		return 0
	}
	return s.capLead(j, leadFactor*time.Duration(s.claimTime.Load()))
}

// capLead bounds a lead for job j (see the comment at the top).
func (s *Scheduler) capLead(j Job, lead time.Duration) time.Duration {
	lead = min(lead, maxLead, j.StartDeadline/4)
	if j.Overlap == SkipIfRunning && j.RunLease > 0 {
		lead = min(lead, j.RunLease/4)
	}
	if lead < minLead {
		return 0
	}
	return lead
}

// inOrder bounds the lead of a job's tick by a quarter of gap, the
// distance from the job's instant before it (zero: unknown, no bound), so
// that one job's ticks are claimed in the order of their instants. The
// state machine grants an instant after a later one only for an any-order
// claim whose instant the job's record vouches for, and a plain claim
// never; and a SkipIfRunning tick claimed while the tick before it holds
// its run lease is refused as busy. A lead longer than the gap, which the StartDeadline and RunLease
// bounds allow once a job's StartDeadline is several intervals and its
// claims are slow, sent a tick's claim before the previous tick's was
// answered, and lost ticks that way: at 100 ms with a 2 s StartDeadline
// on a loaded host, a third of them.
func inOrder(lead, gap time.Duration) time.Duration {
	if gap > 0 {
		lead = min(lead, gap/4)
	}
	if lead < minLead {
		return 0
	}
	return lead
}

// grantedRun is a granted tick and when its run is due: its instant plus
// the job's jitter.
type grantedRun struct {
	js    *jobState
	r     Run
	start time.Time
}

// startOf returns when the run of the tick at instant at is due.
func startOf(js *jobState, at time.Time) time.Time {
	return at.Add(jitter(js.job.Name, at, js.job.Jitter))
}

// launchAt starts the granted runs, each at its start or at once if that
// has passed. Their registry entries and leases are taken first, so that
// what is left at each start is only starting goroutines. It returns when
// every run started, or when ctx ends; runs not started by then are
// dropped (dropRun).
func (s *Scheduler) launchAt(ctx context.Context, runs []grantedRun, sent time.Time) {
	if len(runs) == 0 {
		return
	}
	if len(runs) > 1 {
		slices.SortStableFunc(runs, func(a, b grantedRun) int { return a.start.Compare(b.start) })
	}
	prepared := make([]*preparedRun, 0, len(runs))
	starts := make([]time.Time, 0, len(runs))
	for _, g := range runs {
		if p, ok := s.prepareRun(ctx, g.js, g.r, sent); ok {
			prepared = append(prepared, p)
			starts = append(starts, g.start)
		}
	}
	_, machine := s.clock.(realClock)
	for i := 0; i < len(prepared); {
		now := s.clock.Now()
		for ; i < len(prepared) && !starts[i].After(now); i++ {
			s.launchOrDrop(prepared[i])
		}
		if i == len(prepared) {
			return
		}
		if machine {
			j := i + 1
			for j < len(prepared) && starts[j].Equal(starts[i]) {
				j++
			}
			runLauncher.wait(ctx, s, starts[i], prepared[i:j])
			if ctx.Err() != nil {
				for _, p := range prepared[j:] {
					s.dropRun(p)
				}
				return
			}
			i = j
			continue
		}
		if !s.sleepUntil(ctx, starts[i]) {
			for _, p := range prepared[i:] {
				s.dropRun(p)
			}
			return
		}
	}
}

// launchOrDrop starts a prepared run, or drops it if the node started
// shutting down since it was prepared.
func (s *Scheduler) launchOrDrop(p *preparedRun) {
	if p.ctx.Err() != nil {
		s.dropRun(p)
		return
	}
	s.launchRun(p)
}

// sleepUntil waits on the Scheduler's clock until at, and reports false if
// ctx ended first.
func (s *Scheduler) sleepUntil(ctx context.Context, at time.Time) bool {
	wake := make(chan struct{})
	stop := s.clock.AfterFunc(at.Sub(s.clock.Now()), func() { close(wake) })
	defer stop()
	select {
	case <-wake:
		return true
	case <-ctx.Done():
		return false
	}
}

// retryAtStart queues the claim of a tick sent ahead of its start again at
// the start, and reports whether it did. A claim sent before the tick's
// start and refused as busy may have been refused for a run that still
// ends in time, as it would not have been without a lead: another node's
// run that ends in the last moments before the start, or this node's own
// run that has ended but whose release had not committed yet. Under
// SkipIfRunning the question is whether the previous run still goes at
// the start, so it is asked again then, or at once if the refusal came
// back after the start (it was still decided on the leader before the
// answer left). A claim sent at or after the start is not retried, and
// its refusal is judged as it always was (staleLease for this node's own
// lease). sent is when the claim was sent, on the Scheduler's clock.
func (s *Scheduler) retryAtStart(p pendingClaim, sent time.Time) bool {
	if !sent.Before(p.start()) {
		return false
	}
	return s.claimAgainAtStart(p)
}

// claimAgainAtStart queues the tick of claim p to be claimed again at its
// start, or at once if that has passed, and reports whether it did: not
// for a RunNow request, a removed job or a stopped Scheduler.
func (s *Scheduler) claimAgainAtStart(p pendingClaim) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.runNow || p.js.removed.Load() || !s.running {
		return false
	}
	s.queue.push(event{at: p.start(), js: p.js, inst: time.Unix(0, p.claim.At), atStart: true, again: true})
	s.poke()
	return true
}
