package cluster

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/interlockraft/interlock/fsm"
)

// A leader that removes a server as dead (autopilot.go) also releases its
// node in the state machine: its job registrations, locks and run leases go.
// A node cut off by a long partition is removed that way while it still
// runs, and after the heal it is added back to Raft (reconnect.go), but its
// Schedulers registered their jobs only once, when they started. Until they
// are registered again, peers never rank the node first for a tick and it
// runs its jobs only as a late fallback. So the node watches for jobs its
// Schedulers hold that the state machine no longer lists for it, and
// registers them again.

// registrations is the node's bookkeeping for restoreRegistrations, used
// only from the maintenance loop except for busy.
type registrations struct {
	// missing is when each held job was first seen unregistered.
	missing map[string]time.Time
	mu      sync.Mutex
	busy    bool // a registration is being proposed
}

// restoreRegistrations registers again the jobs held by this node's
// Schedulers that the state machine has not listed for this node for a
// whole ReconcileInterval. The wait leaves a Scheduler that just started
// the time to register its jobs itself. The proposal runs on its own
// goroutine so the maintenance loop never waits for a commit.
func (n *Node) restoreRegistrations(r *registrations) {
	if n.Leader() == "" || !n.inConfiguration() || !n.caughtUp() {
		return
	}
	now := time.Now()
	var due []string
	// Every ReconcileInterval, for every job of the node: nothing here
	// sorts all of them or walks one list per element of another.
	unlisted := n.fsm.NotRegisteredBy(n.cfg.NodeName, n.runs.HeldUnsorted())
	slices.Sort(unlisted)
	for job := range r.missing {
		if _, found := slices.BinarySearch(unlisted, job); !found {
			delete(r.missing, job)
		}
	}
	for _, job := range unlisted {
		since, ok := r.missing[job]
		if !ok {
			r.missing[job] = now
			continue
		}
		if now.Sub(since) >= n.cfg.ReconcileInterval {
			due = append(due, job)
		}
	}
	if len(due) == 0 {
		return
	}
	r.mu.Lock()
	if r.busy {
		r.mu.Unlock()
		return
	}
	r.busy = true
	r.mu.Unlock()
	n.goFunc(func() {
		defer func() {
			r.mu.Lock()
			r.busy = false
			r.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ProposeTimeout)
		defer cancel()
		if _, err := n.submit(ctx, fsm.EncodeRegistration(fsm.Registration{Node: n.cfg.NodeName, Add: due})); err != nil {
			n.logger.Debug("register jobs again", "jobs", due, "error", err)
			return
		}
		// A Scheduler that dropped a job while this was in flight has
		// already unregistered it; undo the add so peers do not rank this
		// node first for a job it no longer runs.
		held := n.runs.Held()
		var kept, dropped []string
		for _, job := range due {
			if _, found := slices.BinarySearch(held, job); found {
				kept = append(kept, job)
			} else {
				dropped = append(dropped, job)
			}
		}
		if len(dropped) > 0 {
			if _, err := n.submit(ctx, fsm.EncodeRegistration(fsm.Registration{Node: n.cfg.NodeName, Remove: dropped})); err != nil {
				n.logger.Debug("unregister jobs dropped meanwhile", "jobs", dropped, "error", err)
			}
		}
		if len(kept) > 0 {
			n.logger.Info("registered jobs again after the cluster released this node", "jobs", kept)
		}
	})
}
