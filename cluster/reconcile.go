package cluster

import (
	"slices"
	"time"

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

	inCluster := false
	wasLeader := false
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-n.gossip.events:
		case <-obsCh:
		case <-ticker.C:
		case <-fast.C:
			if inCluster {
				fast.Stop()
				continue
			}
		}
		n.refreshAlive()
		if !inCluster && n.tryBootstrap() && n.hasConfiguration() {
			inCluster = true
			n.setMeta(func(m *meta) { m.InCluster = true })
		}
		leader := n.raft.State() == raft.Leader
		if leader && !wasLeader {
			// Act only on a state machine that has applied everything the
			// previous leader committed.
			if err := n.raft.Barrier(n.cfg.ProposeTimeout).Error(); err != nil {
				n.logger.Warn("barrier after gaining leadership failed", "error", err)
				continue
			}
			n.logger.Info("gained leadership")
		}
		wasLeader = leader
		if leader {
			n.reconcile()
		}
	}
}

// reconcile makes the Raft configuration follow gossip, as Nomad's
// reconcileMember does: add alive members (voters up to MaxVoters, then
// non-voters), replace a member whose address changed, and remove members
// that left. Failed members stay; a failure may be a passing partition.
func (n *Node) reconcile() {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		n.logger.Warn("reconcile: read configuration", "error", err)
		return
	}
	servers := make(map[raft.ServerID]raft.Server)
	voters := 0
	for _, s := range f.Configuration().Servers {
		servers[s.ID] = s
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	self := raft.ServerID(n.cfg.NodeName)
	timeout := n.cfg.ProposeTimeout
	for _, m := range n.members() {
		id := raft.ServerID(m.Name)
		if id == self {
			continue
		}
		s, in := servers[id]
		switch {
		case m.Status == StatusLeft || m.Leaving || n.isLeaving(m):
			if in {
				if err := n.raft.RemoveServer(id, 0, timeout).Error(); err != nil {
					n.logger.Warn("remove left server", "server", m.Name, "error", err)
					continue
				}
				n.logger.Info("removed left server", "server", m.Name)
				if s.Suffrage == raft.Voter {
					voters--
				}
			}
		case m.Status == StatusAlive && m.RaftAddr != "":
			addr := raft.ServerAddress(m.RaftAddr)
			if in && s.Address == addr {
				continue
			}
			if in {
				// Same name, new address: a rescheduled container. Drop the
				// stale entry first so the cluster never waits on it.
				if err := n.raft.RemoveServer(id, 0, timeout).Error(); err != nil {
					n.logger.Warn("remove stale server", "server", m.Name, "error", err)
					continue
				}
				n.logger.Info("replaced stale server address", "server", m.Name, "old", s.Address, "new", addr)
				if s.Suffrage == raft.Voter {
					voters--
				}
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
				n.logger.Warn("add server", "server", m.Name, "error", err)
				continue
			}
			n.logger.Info("added server", "server", m.Name, "addr", addr)
		}
	}
	n.removeDeadServers()
	n.promoteNonVoters()
}

// removeDeadServers drops servers that have been failed, or unknown to
// gossip, for DeadServerTimeout, as raft-autopilot's CleanupDeadServers
// does: never more than (voters-1)/2 voters in one pass, so a partitioned
// leader cannot shrink the configuration below a quorum of it.
func (n *Node) removeDeadServers() {
	if n.cfg.DeadServerTimeout < 0 {
		return
	}
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	byName := make(map[string]Member)
	for _, m := range n.members() {
		byName[m.Name] = m
	}
	now := time.Now()
	self := raft.ServerID(n.cfg.NodeName)
	voters := 0
	var deadVoters, deadOthers []raft.Server
	seen := make(map[raft.ServerID]struct{})
	for _, s := range f.Configuration().Servers {
		seen[s.ID] = struct{}{}
		if s.Suffrage == raft.Voter {
			voters++
		}
		if s.ID == self {
			continue
		}
		var failedSince time.Time
		if m, ok := byName[string(s.ID)]; ok {
			if m.Status != StatusFailed {
				delete(n.missingSince, s.ID)
				continue
			}
			failedSince = m.Since
		} else {
			t, ok := n.missingSince[s.ID]
			if !ok {
				t = now
				n.missingSince[s.ID] = t
			}
			failedSince = t
		}
		if now.Sub(failedSince) < n.cfg.DeadServerTimeout {
			continue
		}
		if s.Suffrage == raft.Voter {
			deadVoters = append(deadVoters, s)
		} else {
			deadOthers = append(deadOthers, s)
		}
	}
	for id := range n.missingSince {
		if _, ok := seen[id]; !ok {
			delete(n.missingSince, id)
		}
	}
	if limit := (voters - 1) / 2; len(deadVoters) > limit {
		n.logger.Warn("more dead voters than can be removed safely; removing some", "dead", len(deadVoters), "limit", limit)
		deadVoters = deadVoters[:limit]
	}
	// Gossip can still call a voter failed after it came back, and Raft
	// commits each removal on its own. Remove a voter only if the voters
	// gossip sees alive stay a majority of what is left, so no step of the
	// cleanup leaves a configuration that cannot commit.
	aliveVoters := voters - len(deadVoters)
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter || slices.ContainsFunc(deadVoters, func(d raft.Server) bool { return d.ID == s.ID }) {
			continue
		}
		if m, ok := byName[string(s.ID)]; s.ID != self && (!ok || m.Status != StatusAlive) {
			aliveVoters--
		}
	}
	remaining := voters
	safe := deadVoters[:0]
	for _, s := range deadVoters {
		if aliveVoters <= (remaining-1)/2 {
			break
		}
		safe = append(safe, s)
		remaining--
	}
	if len(safe) < len(deadVoters) {
		n.logger.Warn("keeping dead voters: removing them would leave too few live voters to commit", "dead", len(deadVoters), "removing", len(safe))
	}
	for _, s := range append(safe, deadOthers...) {
		if err := n.raft.RemoveServer(s.ID, 0, n.cfg.ProposeTimeout).Error(); err != nil {
			n.logger.Warn("remove dead server", "server", s.ID, "error", err)
			return
		}
		delete(n.missingSince, s.ID)
		n.logger.Info("removed dead server", "server", s.ID, "after", n.cfg.DeadServerTimeout)
	}
}

// promoteNonVoters gives live non-voters a vote while there are fewer than
// MaxVoters voters, so losing voters to cleanup restores fault tolerance.
func (n *Node) promoteNonVoters() {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	alive := *n.alive.Load()
	voters := 0
	var candidates []raft.Server
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters++
		} else if _, ok := alive[string(s.ID)]; ok {
			candidates = append(candidates, s)
		}
	}
	for _, s := range candidates {
		if voters >= n.cfg.MaxVoters {
			return
		}
		if err := n.raft.AddVoter(s.ID, s.Address, 0, n.cfg.ProposeTimeout).Error(); err != nil {
			n.logger.Warn("promote non-voter", "server", s.ID, "error", err)
			return
		}
		voters++
		n.logger.Info("promoted non-voter", "server", s.ID)
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
