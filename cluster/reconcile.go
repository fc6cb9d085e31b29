package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// leavingMemory is how long a leader remembers a node that asked to leave,
// which covers the gap before gossip reports it as left.
const leavingMemory = 30 * time.Second

// maintain is the node's one background loop. It wakes on gossip events,
// Raft leadership changes and a timer, because memberlist events can be
// dropped, and each time it converges: refresh the live set, bootstrap if
// due, and, on the leader, repair the Raft configuration from gossip.
func (n *Node) maintain() {
	obsCh := make(chan raft.Observation, 8)
	obs := raft.NewObserver(obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(obs)
	defer n.raft.DeregisterObserver(obs)

	ticker := time.NewTicker(n.cfg.ReconcileInterval)
	defer ticker.Stop()
	// Until the node is in a cluster, look often: bootstrap waits on it.
	fast := time.NewTicker(50 * time.Millisecond)
	defer fast.Stop()

	pilot := n.newAutopilot()
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		cancel()
		<-pilot.Stop()
	}()

	// Suspicion has no gossip event; it is polled.
	suspectTick := time.NewTicker(suspectPoll)
	defer suspectTick.Stop()
	sus := &suspects{self: n.cfg.NodeName}

	inCluster := false
	wasLeader := false
	regs := &registrations{missing: make(map[string]time.Time)}
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-n.gossip.events:
		case o := <-obsCh:
			if lo, ok := o.Data.(raft.LeaderObservation); ok {
				sus.observeLeader(lo.LeaderID, time.Now())
			}
			n.matchCadence()
		case <-ticker.C:
		case <-suspectTick.C:
			n.refreshAlive(sus.excluded(n.ml, time.Now()))
			n.matchCadence()
			continue
		case <-fast.C:
			if inCluster {
				fast.Stop()
				continue
			}
		}
		n.refreshAlive(sus.excluded(n.ml, time.Now()))
		n.announceMeta()
		if !inCluster && n.tryBootstrap() && n.hasConfiguration() {
			inCluster = true
			n.setMeta(func(m *meta) { m.InCluster = true })
		}
		if inCluster && !n.shuttingDown() {
			n.restoreRegistrations(regs)
		}
		leader := n.raft.State() == raft.Leader
		if leader && !wasLeader {
			// Act only on a state machine that has applied everything the
			// previous leader committed.
			if err := n.awaitFuture(n.raft.Barrier(n.cfg.ProposeTimeout)); err != nil {
				if !n.shuttingDown() {
					n.logger.Warn("barrier after gaining leadership failed", "error", err)
				}
				continue
			}
			n.logger.Info("gained leadership")
			n.pilot.reset()
			pilot.Start(ctx)
		}
		if !leader && wasLeader {
			pilot.Stop()
		}
		wasLeader = leader
		if leader {
			n.reconcile()
		}
	}
}

// reconcile makes the Raft configuration follow gossip, as Nomad's
// reconcileMember does: add alive members (voters up to MaxVoters, then
// non-voters), replace a member whose address or incarnation changed, and
// remove members that left. Failed members are autopilot's (autopilot.go):
// it removes them only once Raft, too, has lost them, and promotes
// non-voters while fewer than MaxVoters vote.
func (n *Node) reconcile() {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		n.logger.Warn("reconcile could not read the Raft configuration", "error", err)
		return
	}
	// A name may be configured under an older incarnation's ID (a
	// memory-only node that restarted, identity.go), so servers are
	// grouped by name.
	byName := make(map[string][]raft.Server)
	voters := 0
	for _, s := range f.Configuration().Servers {
		name := nameOf(s.ID)
		byName[name] = append(byName[name], s)
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	timeout := n.cfg.ProposeTimeout
	remove := func(s raft.Server, what string, m Member) bool {
		if err := n.raft.RemoveServer(s.ID, 0, timeout).Error(); err != nil {
			level := hclog.Warn
			if n.leavingOrDown() {
				// This leader is leaving too: handing leadership over, or
				// stopping, makes Raft refuse the change, and it is the
				// next leader's to make.
				level = hclog.Debug
			}
			n.logger.Log(level, "could not remove server", "server", m.Name, "id", s.ID, "state", what, "error", err)
			return false
		}
		if s.Suffrage == raft.Voter {
			voters--
		}
		return true
	}
	for _, m := range n.members() {
		if m.Name == n.cfg.NodeName {
			continue
		}
		configured := byName[m.Name]
		switch {
		case m.Status == StatusLeft || m.Leaving || n.isLeaving(m):
			for _, s := range configured {
				if remove(s, "left", m) {
					n.logger.Info("removed left server", "server", m.Name)
				}
			}
		case m.Status == StatusAlive && m.RaftAddr != "":
			id, addr := m.raftID(), raft.ServerAddress(m.RaftAddr)
			if len(configured) == 1 && configured[0].ID == id && configured[0].Address == addr {
				continue
			}
			if !n.admitted(m) { // TLS check first (tls_admit.go)
				continue
			}
			// Same name, new address (a rescheduled container) or new
			// incarnation (a memory-only restart): drop the stale entry
			// first, so the cluster never waits on it and never counts
			// the new process's vote for the old identity.
			ok := true
			for _, s := range configured {
				if ok = remove(s, "stale", m); !ok {
					break
				}
				n.logger.Info("replaced stale server", "server", m.Name, "old_id", s.ID, "old", s.Address, "new_id", id, "new", addr)
			}
			if !ok {
				continue
			}
			var err error
			if voters < n.cfg.MaxVoters {
				err = n.raft.AddVoter(id, addr, 0, timeout).Error()
				if err == nil {
					voters++
				}
			} else {
				err = n.raft.AddNonvoter(id, addr, 0, timeout).Error()
			}
			if err != nil {
				n.logger.Warn("could not add server", "server", m.Name, "error", err)
				continue
			}
			n.logger.Info("added server", "server", m.Name, "id", id, "addr", addr)
		}
	}
}

// isLeaving reports whether m asked this leader to remove it and has not
// come back since. A member heard from as alive and not leaving after its
// request is a new process under the same name (a rolling restart), which
// must be added again at once.
func (n *Node) isLeaving(m Member) bool {
	n.leavingMu.Lock()
	defer n.leavingMu.Unlock()
	t, ok := n.leaving[m.Name]
	if !ok {
		return false
	}
	if time.Since(t) > leavingMemory || (m.Status == StatusAlive && !m.Leaving && m.updated.After(t)) {
		delete(n.leaving, m.Name)
		return false
	}
	return true
}

// askedToLeave returns when name asked this node, as leader, to remove it
// from Raft within the last leavingMemory, or zero. It takes only
// leavingMu, so gossip callbacks may call it.
func (n *Node) askedToLeave(name string) time.Time {
	n.leavingMu.Lock()
	defer n.leavingMu.Unlock()
	t, ok := n.leaving[name]
	if !ok || time.Since(t) > leavingMemory {
		return time.Time{}
	}
	return t
}

// awaitFuture waits for f until it resolves or this node begins to shut
// down. A barrier can stay unresolved inside Raft until Raft stops, and
// close stops Raft only after this loop has returned: waiting on the
// future alone once hung a Shutdown for minutes. The waiting goroutine
// ends when Raft's shutdown resolves the future.
func (n *Node) awaitFuture(f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-n.shutdownCh:
		return ErrShutdown
	}
}
