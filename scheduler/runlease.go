package scheduler

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/fsm"
	"github.com/interlockraft/interlock/internal/seam"
)

// leaseKeeper renews the run leases of this node's running jobs and ends
// them when the runs finish. Renewals and ends that fall due together go
// in one Raft entry; while one entry is in flight the next batch collects,
// so a burst of finishing runs costs a few entries, not one each.
//
// It also keeps each lease's local deadline, as a Lock does: the send time
// of the claim that granted the run, or of its last successful renewal,
// plus the lease's TTL. The leader stamps those entries after they were
// sent, so the leader's expiry is never earlier. When the deadline passes
// without a renewal (a partition, a frozen process, a leader that cannot
// commit), the run's context is cancelled then, before another node can be
// granted the job. A timer per run does this, so a renewal stuck in flight
// cannot delay it. The timer fires a small guard before the deadline: the
// leader's expiry can follow the deadline by as little as one commit, and a
// busy process may wake the timer later than that.
type leaseKeeper struct {
	coord seam.RunLeaser
	// reporter, if the coordinator keeps run history, sends finished runs
	// in the same entries as the lease updates.
	reporter seam.RunReporter
	logger   hclog.Logger

	mu     sync.Mutex
	active map[fsm.RunRef]*activeRun
	done   []fsm.RunRef
	// finished holds runs to report to the history, at most
	// maxPendingFinished: while the cluster cannot commit, the oldest are
	// dropped rather than held without bound.
	finished []fsm.Finished
	kick     chan struct{}
}

// maxPendingFinished bounds the finished runs waiting to be reported. It
// holds a few ticks of tens of thousands of jobs, which all finish while
// one update is in flight, so a healthy node drops none.
const maxPendingFinished = 1 << 16

type activeRun struct {
	ttl time.Duration
	// renewAt is when the next renewal is due; zero retries at once.
	renewAt time.Time
	// validUntil is the local deadline of the lease.
	validUntil time.Time
	// expiry cancels the run at validUntil.
	expiry *time.Timer
	cancel context.CancelFunc
}

// cancelGuard is how long before a lease's local deadline its run is
// cancelled: a fifth of the lease, at most one second. A twentieth capped
// at 50ms, and then a tenth capped at 250ms, each proved too thin in CI:
// under -race on two cores shared with other test packages, the timer's
// goroutine ran more than 100ms late, after another node had started the
// next run. A healthy holder renews every third of the lease, so the guard
// only cuts short a run whose renewals already failed.
func cancelGuard(ttl time.Duration) time.Duration { return min(ttl/5, time.Second) }

// cancelAt is when the timer cancels the run.
func (a *activeRun) cancelAt() time.Time { return a.validUntil.Add(-cancelGuard(a.ttl)) }

func newLeaseKeeper(coord seam.RunLeaser, logger hclog.Logger) *leaseKeeper {
	k := &leaseKeeper{coord: coord, logger: logger, active: make(map[fsm.RunRef]*activeRun), kick: make(chan struct{}, 1)}
	k.reporter, _ = coord.(seam.RunReporter)
	return k
}

// begin tracks a granted run whose claim was sent at sent. cancel stops the
// run when its lease is lost or its local deadline passes.
func (k *leaseKeeper) begin(ref fsm.RunRef, ttl time.Duration, sent time.Time, cancel context.CancelFunc) {
	a := &activeRun{ttl: ttl, renewAt: sent.Add(ttl / 3), validUntil: sent.Add(ttl), cancel: cancel}
	k.mu.Lock()
	k.active[ref] = a
	a.expiry = time.AfterFunc(time.Until(a.cancelAt()), func() { k.expire(ref, a) })
	k.mu.Unlock()
	k.poke()
}

// end releases a finished run's lease.
func (k *leaseKeeper) end(ref fsm.RunRef) { k.finish(&ref, nil) }

// finish releases a finished run's lease, if ref is not nil, and reports
// fin to the history, if not nil, both in the next update.
func (k *leaseKeeper) finish(ref *fsm.RunRef, fin *fsm.Finished) {
	k.mu.Lock()
	if ref != nil {
		if a, ok := k.active[*ref]; ok {
			a.expiry.Stop()
			delete(k.active, *ref)
		}
		k.done = append(k.done, *ref)
	}
	if fin != nil && k.reporter != nil {
		k.finished = appendBounded(k.finished, *fin)
	}
	k.mu.Unlock()
	k.poke()
}

// appendBounded appends fins to list, dropping the oldest beyond
// maxPendingFinished: a quarter of the bound at once, so that a full list
// costs one copy per many appends, not one per append.
func appendBounded(list []fsm.Finished, fins ...fsm.Finished) []fsm.Finished {
	list = append(list, fins...)
	if over := len(list) - maxPendingFinished; over > 0 {
		list = append(list[:0], list[max(over, maxPendingFinished/4):]...)
	}
	return list
}

// expire cancels a run whose lease reached its local deadline unrenewed.
func (k *leaseKeeper) expire(ref fsm.RunRef, a *activeRun) {
	k.mu.Lock()
	if k.active[ref] != a {
		k.mu.Unlock()
		return
	}
	if left := time.Until(a.cancelAt()); left > 0 {
		// A renewal landed while the timer fired.
		a.expiry.Reset(left)
		k.mu.Unlock()
		return
	}
	delete(k.active, ref)
	k.mu.Unlock()
	k.logger.Warn("run lease not renewed before it expires; cancelling the run so it cannot overlap the next one", "job", ref.Job, "tick", ref.Tick)
	a.cancel()
}

func (k *leaseKeeper) poke() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// due collects what to send now, and when to look again.
func (k *leaseKeeper) due(now time.Time) (renew, done []fsm.RunRef, finished []fsm.Finished, next time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	done, k.done = k.done, nil
	finished, k.finished = k.finished, nil
	next = time.Hour
	for ref, a := range k.active {
		if !a.renewAt.After(now) {
			renew = append(renew, ref)
			a.renewAt = now.Add(a.ttl / 3)
		}
		next = min(next, a.renewAt.Sub(now))
	}
	return renew, done, finished, next
}

// run sends renewals and ends until ctx ends.
func (k *leaseKeeper) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		renew, done, finished, next := k.due(now)
		if len(renew) > 0 || len(done) > 0 || len(finished) > 0 {
			if err := k.send(ctx, now, renew, done, finished); err != nil && ctx.Err() == nil {
				next = min(next, 50*time.Millisecond)
			}
		}
		timer.Reset(next)
		select {
		case <-ctx.Done():
			return
		case <-k.kick:
		case <-timer.C:
		}
	}
}

// flush ends every lease still pending, for use after the runs stopped.
func (k *leaseKeeper) flush(ctx context.Context) {
	now := time.Now()
	_, done, finished, _ := k.due(now)
	if len(done) > 0 || len(finished) > 0 {
		if err := k.send(ctx, now, nil, done, finished); err != nil {
			k.logger.Debug("could not end run leases; they expire by their TTL", "runs", len(done), "error", err)
		}
	}
}

// send proposes one update, sent at sent: a renewal that holds extends the
// lease's local deadline to sent plus its TTL.
func (k *leaseKeeper) send(ctx context.Context, sent time.Time, renew, done []fsm.RunRef, finished []fsm.Finished) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var held []bool
	var err error
	if k.reporter != nil && len(finished) > 0 {
		held, err = k.reporter.ReportRuns(cctx, renew, done, finished)
	} else {
		held, err = k.coord.UpdateRuns(cctx, renew, done)
	}
	if err != nil {
		// Put the ends and reports back to retry; renewals are retried by
		// the timer.
		k.mu.Lock()
		k.done = append(done, k.done...)
		k.finished = appendBounded(finished, k.finished...)
		for _, ref := range renew {
			if a, ok := k.active[ref]; ok {
				a.renewAt = time.Time{}
			}
		}
		k.mu.Unlock()
		k.logger.Debug("run lease update failed, will retry", "renew", len(renew), "done", len(done), "error", err)
		return err
	}
	for i, ok := range held {
		ref := renew[i]
		k.mu.Lock()
		a := k.active[ref]
		if a == nil {
			k.mu.Unlock()
			continue
		}
		if ok {
			if until := sent.Add(a.ttl); until.After(a.validUntil) {
				a.validUntil = until
				a.expiry.Reset(time.Until(a.cancelAt()))
			}
			k.mu.Unlock()
			continue
		}
		a.expiry.Stop()
		delete(k.active, ref)
		k.mu.Unlock()
		k.logger.Warn("run lease lost; cancelling the run so it cannot overlap the next one", "job", ref.Job, "tick", ref.Tick)
		a.cancel()
	}
	return nil
}
