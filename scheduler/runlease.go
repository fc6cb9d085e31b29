package scheduler

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/fsm"
)

// runLeaser is implemented by coordinators that keep run leases, as
// *cluster.Node does. With one, a SkipIfRunning job's tick is granted only
// while no other run of the job holds its lease, on any node.
type runLeaser interface {
	UpdateRuns(ctx context.Context, renew, done []fsm.RunRef) ([]bool, error)
}

// leaseKeeper renews the run leases of this node's running jobs and ends
// them when the runs finish. Renewals and ends that fall due together go
// in one Raft entry; while one entry is in flight the next batch collects,
// so a burst of finishing runs costs a few entries, not one each.
type leaseKeeper struct {
	coord  runLeaser
	logger hclog.Logger

	mu     sync.Mutex
	active map[fsm.RunRef]*activeRun
	done   []fsm.RunRef
	kick   chan struct{}
}

type activeRun struct {
	ttl     time.Duration
	renewed time.Time
	cancel  context.CancelFunc
}

func newLeaseKeeper(coord runLeaser, logger hclog.Logger) *leaseKeeper {
	return &leaseKeeper{coord: coord, logger: logger, active: make(map[fsm.RunRef]*activeRun), kick: make(chan struct{}, 1)}
}

// begin tracks a granted run. cancel stops the run if its lease is lost.
func (k *leaseKeeper) begin(ref fsm.RunRef, ttl time.Duration, cancel context.CancelFunc) {
	k.mu.Lock()
	k.active[ref] = &activeRun{ttl: ttl, renewed: time.Now(), cancel: cancel}
	k.mu.Unlock()
	k.poke()
}

// end releases a finished run's lease.
func (k *leaseKeeper) end(ref fsm.RunRef) {
	k.mu.Lock()
	delete(k.active, ref)
	k.done = append(k.done, ref)
	k.mu.Unlock()
	k.poke()
}

func (k *leaseKeeper) poke() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// due collects what to send now, and when to look again.
func (k *leaseKeeper) due(now time.Time) (renew, done []fsm.RunRef, next time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	done, k.done = k.done, nil
	next = time.Hour
	for ref, a := range k.active {
		at := a.renewed.Add(a.ttl / 3)
		if !at.After(now) {
			renew = append(renew, ref)
			a.renewed = now // the lease is measured from the send, conservatively
			at = now.Add(a.ttl / 3)
		}
		next = min(next, at.Sub(now))
	}
	return renew, done, next
}

// run sends renewals and ends until ctx ends.
func (k *leaseKeeper) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		renew, done, next := k.due(time.Now())
		if len(renew) > 0 || len(done) > 0 {
			if err := k.send(ctx, renew, done); err != nil && ctx.Err() == nil {
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
	_, done, _ := k.due(time.Now())
	if len(done) > 0 {
		if err := k.send(ctx, nil, done); err != nil {
			k.logger.Debug("could not end run leases; they expire by their TTL", "runs", len(done), "error", err)
		}
	}
}

func (k *leaseKeeper) send(ctx context.Context, renew, done []fsm.RunRef) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	held, err := k.coord.UpdateRuns(cctx, renew, done)
	if err != nil {
		// Put the ends back to retry; renewals are retried by the timer.
		k.mu.Lock()
		k.done = append(done, k.done...)
		for _, ref := range renew {
			if a, ok := k.active[ref]; ok {
				a.renewed = time.Time{}
			}
		}
		k.mu.Unlock()
		k.logger.Debug("run lease update failed, will retry", "renew", len(renew), "done", len(done), "error", err)
		return err
	}
	for i, ok := range held {
		if ok {
			continue
		}
		ref := renew[i]
		k.mu.Lock()
		a := k.active[ref]
		delete(k.active, ref)
		k.mu.Unlock()
		if a != nil {
			k.logger.Warn("run lease lost; cancelling the run so it cannot overlap the next one", "job", ref.Job, "tick", ref.Tick)
			a.cancel()
		}
	}
	return nil
}
