package scheduler

import (
	"context"
	"fmt"
	"slices"
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
//     nowhere. A node checks this when it starts scheduling the job (Run,
//     or Add while Run runs), which is what finds the ticks lost while
//     the whole cluster was down or the job ran nowhere, and when its own
//     loop fell behind a tick's deadline (a paused process).
//   - With a cluster, also when this node's own claim for a tick is lost:
//     it got no answer (recoverGrants found no grant of it), or the
//     cluster refused it as expired (the entry committed after the tick's
//     start deadline: a slow commit, an election, a failover), or refused
//     it as superseded (a later tick of the job was granted first, and
//     this one never was: claims of consecutive ticks from different
//     nodes committed out of order, and this claim was plain, as while
//     some server is older; an any-order claim is granted late instead).
//     The tick counts as missed unless the state machine shows another
//     node holding that very instant (lostClaims); it keeps the job's
//     latest grant and the few before it (fsm.JobState.Granted). A claim
//     refused as busy because of this node's own lease for a run that
//     already ended is judged at the tick's start deadline (staleLease),
//     and so is a fallback this node's loop reached only after that
//     deadline (lateFallbackLocked): the node holding the lease is the
//     only one that can tell a skip from a miss.
//   - Without a cluster, only when the loop fell behind: nothing is
//     remembered across restarts.
//
// Each node counts what it sees itself, once per instant: missedUpTo is
// the newest instant counted, checkedUpTo the newest a check counted, and
// lostAt the latest instants counted from lost claims, which may arrive
// out of order (a failed claim resolves up to recoverWindow after its
// deadline, and the next tick's expired refusal may come first).

// lostAtKept is how many instants counted from lost claims a job
// remembers, to count each once even when the losses arrive out of order.
const lostAtKept = 8

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
	js.checkedUpTo = newest
	s.missed(js, newest, n)
	return s.catchUpLocked(ctx, js, newest, now)
}

// catchUpLocked, under RunOnce, returns a claim for the missed instant
// newest if it is at most MisfireWindow old, nothing later was granted,
// and the job may run now (without a cluster, starts its run instead). It
// is the one catch-up run of a loss, however many ticks were lost. s.mu is
// held.
func (s *Scheduler) catchUpLocked(ctx context.Context, js *jobState, newest, now time.Time) (pendingClaim, bool) {
	j := js.job
	if j.Misfire != RunOnce || now.Sub(newest) > j.MisfireWindow {
		return pendingClaim{}, false
	}
	if (j.Overlap == SkipIfRunning && js.active.Load() > 0) || s.pausedJob(j.Name) {
		return pendingClaim{}, false
	}
	if s.coord != nil {
		if st, ok := s.coord.LastGrant(j.Name); ok && st.LastAt >= newest.UnixNano() {
			return pendingClaim{}, false // it ran after all, or a later tick did
		}
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
	return pendingClaim{js: js, claim: c, catchUp: true}, true
}

// staleLease handles a claim refused as busy because of this node's own
// run lease while no run of the job goes on here: the previous run ended,
// but the entry that ends its lease had not committed before this claim
// (it waits behind an election, or was retried after one). Until that
// lease ends, every node's claim of the tick is refused alike, so the tick
// may run nowhere, and no node counts it as skipped, as none runs the job.
// Another node's later fallback claim may still be granted once the lease
// ends, so the tick is judged at its start deadline (staleLeaseLocked).
func (s *Scheduler) staleLease(p pendingClaim) {
	s.mu.Lock()
	if !p.js.removed.Load() {
		at := time.Unix(0, p.claim.At)
		start := at.Add(jitter(p.js.job.Name, at, p.js.job.Jitter))
		s.queue.push(event{at: start.Add(p.js.job.StartDeadline), js: p.js, inst: at, stale: true})
	}
	s.mu.Unlock()
	s.poke()
}

// staleLeaseLocked counts the tick at inst as missed if no node holds it
// now that its start deadline passed (see staleLease), and under RunOnce
// returns its catch-up claim. s.mu is held.
func (s *Scheduler) staleLeaseLocked(ctx context.Context, js *jobState, inst, now time.Time) (pendingClaim, bool) {
	return s.unclaimedLocked(ctx, js, inst, now,
		"tick missed: the job's previous run had ended, but its run lease was still held",
		"refused while the previous run's lease, held by this node, had not yet been released (the run had ended)")
}

// countLostLocked records that the instant at of a lost claim is counted,
// and reports whether it was not counted before. s.mu is held.
func (s *Scheduler) countLostLocked(js *jobState, at time.Time) bool {
	if !at.After(js.checkedUpTo) || slices.Contains(js.lostAt, at.UnixNano()) {
		return false
	}
	if len(js.lostAt) == lostAtKept {
		js.lostAt = slices.Delete(js.lostAt, 0, 1)
	}
	js.lostAt = append(js.lostAt, at.UnixNano())
	js.missedUpTo = later(js.missedUpTo, at) // not again by the misfire check
	return true
}

// lostClaims counts this node's claims that ended with no run here (they
// got no answer, or were refused as expired) as missed, and returns those
// it counted. A claim is not counted if the state machine shows another
// node holding its very instant (it ran there), if it was a catch-up claim
// (its instant was counted when it was lost), or if this node counted the
// instant already. Under RunOnce, it queues the catch-up claim of the
// newest counted instant of each job, which claims it if it is still
// within MisfireWindow. It takes s.mu.
func (s *Scheduler) lostClaims(lost []pendingClaim) []pendingClaim {
	var counted []pendingClaim
	catchUp := false
	s.mu.Lock()
	for _, p := range lost {
		if p.catchUp {
			continue
		}
		// LastGrant reads the node's state machine, under its own lock
		// only, as the loop's handleLocked does.
		if s.grantedInstant(p.claim.Job, p.claim.At) {
			continue // someone holds this instant: it ran, or runs, there
		}
		js, at := p.js, time.Unix(0, p.claim.At)
		if !s.countLostLocked(js, at) {
			continue
		}
		s.noteMissed(js, at, 1)
		counted = append(counted, p)
		if js.job.Misfire == RunOnce && !js.removed.Load() {
			s.queue.push(event{at: s.clock.Now(), js: js, inst: at, catchUp: true})
			catchUp = true
		}
	}
	s.mu.Unlock()
	if catchUp {
		s.poke()
	}
	return counted
}

// expiredClaims handles claims the cluster refused as expired: their
// entry committed after the tick's start deadline.
func (s *Scheduler) expiredClaims(expired []pendingClaim) {
	s.lateClaims(expired, "claims refused as expired; ticks missed", "the claim committed after the tick's start deadline (a slow commit or a leader change)")
}

// supersededClaims handles plain claims the cluster refused because a
// later tick of their job was granted first: plain claims are granted in
// instant order only, so their ticks ran nowhere. It happens when claims
// for consecutive ticks, made by different nodes, commit out of order
// (one refused as busy and retried at its start, say, or one held up in a
// slow forward) while some server does not speak fsm.ProtocolAnyOrder,
// which would grant them late.
func (s *Scheduler) supersededClaims(superseded []pendingClaim) {
	s.lateClaims(superseded, "claims refused after a later tick was granted; ticks missed", "a later tick of the job was granted before this claim was judged, and some server does not speak the protocol that grants a tick after a later one")
}

// grantedInstant reports whether the state machine shows the job's instant
// at granted to some node. It knows the job's latest grant and the few
// before it (fsm.JobState.Granted); an instant older than that counts as
// not granted, as it did before the state machine kept any.
func (s *Scheduler) grantedInstant(job string, at int64) bool {
	st, ok := s.coord.LastGrant(job)
	if !ok {
		return false
	}
	granted, _ := st.Granted(at)
	return granted
}

// lateFallbackLocked judges a tick whose fallback this node handled only
// after the tick's start deadline, its loop having fallen behind (a
// starved process): the tick ran nowhere unless the state machine shows
// it granted, and this node may have been the only one able to claim it
// (its own stale run lease refused the others as busy). It counts the
// tick as missed, once, as for a claim refused as expired; under RunOnce
// it returns the catch-up claim. s.mu is held.
func (s *Scheduler) lateFallbackLocked(ctx context.Context, js *jobState, inst, now time.Time) (pendingClaim, bool) {
	return s.unclaimedLocked(ctx, js, inst, now,
		"tick missed: this node's fallback claim came after the tick's start deadline",
		"this node was due to claim it as a fallback, but its scheduling loop fell behind the tick's start deadline")
}

// unclaimedLocked counts the tick at inst, whose start deadline passed
// without this node's claim being judged, as missed, once, unless the
// state machine shows a node holding that very instant: it logs warn at
// Warn and reports cause to OnError, wrapped in ErrMissed. Under RunOnce
// it returns the tick's catch-up claim. s.mu is held.
func (s *Scheduler) unclaimedLocked(ctx context.Context, js *jobState, inst, now time.Time, warn, cause string) (pendingClaim, bool) {
	if s.grantedInstant(js.job.Name, inst.UnixNano()) {
		return pendingClaim{}, false // a node holds it
	}
	if !s.countLostLocked(js, inst) {
		return pendingClaim{}, false
	}
	s.logger.Warn(warn, "job", js.job.Name, "tick", js.job.tickOf(inst), "at", inst)
	s.noteMissed(js, inst, 1)
	if s.onError != nil {
		err := fmt.Errorf("%w: job %q tick %d at %s: %s", ErrMissed, js.job.Name, js.job.tickOf(inst), inst.Format(time.RFC3339Nano), cause)
		name := js.job.Name
		s.runs.Add(1)
		go func() {
			defer s.runs.Done()
			s.report(name, err)
		}()
	}
	return s.catchUpLocked(ctx, js, inst, now)
}

// lateClaims handles claims the cluster refused too late for their tick to
// run: as expired (their entry committed after the tick's start deadline)
// or as superseded (a later tick of the job was granted first). The tick
// ran nowhere unless another node holds it (lostClaims). It logs one Warn
// for the batch, with warn as its message, and reports each counted tick
// to OnError, wrapped in ErrMissed, with cause.
func (s *Scheduler) lateClaims(late []pendingClaim, warn, cause string) {
	missed := s.lostClaims(late)
	if len(missed) == 0 {
		return
	}
	p := missed[0]
	s.logger.Warn(warn, "claims", len(late), "missed", len(missed), "job", p.claim.Job, "tick", p.claim.Tick, "at", time.Unix(0, p.claim.At))
	if s.onError == nil {
		return
	}
	for _, p := range missed {
		s.report(p.claim.Job, fmt.Errorf("%w: job %q tick %d at %s: %s", ErrMissed, p.claim.Job, p.claim.Tick, time.Unix(0, p.claim.At).Format(time.RFC3339Nano), cause))
	}
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
