package cluster

import (
	"context"
	"sync"
	"time"
)

// With TLS on, gossip membership alone does not make a member part of the
// Raft configuration: the leader first makes one RPC to the member's Raft
// address, over TLS like every other, and adds the member only once that
// succeeded. A node that is in gossip (no SecretKey, or a leaked one) but
// speaks plaintext or holds a certificate from another CA, an expired one
// or one for another cluster never becomes a voter that the cluster would
// then wait on.
const (
	// admitTimeout bounds one check.
	admitTimeout = 3 * time.Second
	// admitRetry is how long after a failed check the next may start.
	admitRetry = 5 * time.Second
	// admitValid is how long a passed check admits the member.
	admitValid = time.Minute
)

// admission is the leader's record of those checks, keyed by a member's
// Raft ID and address. Safe for concurrent use.
type admission struct {
	mu       sync.Mutex
	passed   map[string]time.Time
	failed   map[string]time.Time
	inflight map[string]bool
	// refused holds the members whose refusal was logged, so each intruder
	// costs one Warn line until it passes or changes address.
	refused map[string]bool
}

// admitted reports whether the leader may add m to the Raft configuration.
// Without TLS it always may. Otherwise it starts a check in the background
// if none ran recently, and reports false until one passed; the check's
// end wakes the maintenance loop so the member is added without waiting
// for the next reconcile tick.
func (n *Node) admitted(m Member) bool {
	if !n.tlsOn {
		return true
	}
	key := string(m.raftID()) + "@" + m.RaftAddr
	a := &n.tlsAdmission
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if t, ok := a.passed[key]; ok && now.Sub(t) < admitValid {
		return true
	}
	if a.inflight[key] || now.Sub(a.failed[key]) < admitRetry {
		return false
	}
	if a.inflight == nil {
		a.passed, a.failed, a.inflight, a.refused = map[string]time.Time{}, map[string]time.Time{}, map[string]bool{}, map[string]bool{}
	}
	a.inflight[key] = true
	n.goFunc(func() {
		ctx, cancel := context.WithTimeout(n.stopped, admitTimeout)
		_, err := n.fetchStats(ctx, m.RaftAddr, m.raftID())
		cancel()
		a.mu.Lock()
		delete(a.inflight, key)
		if err == nil {
			a.passed[key] = time.Now()
			delete(a.failed, key)
			delete(a.refused, key)
		} else {
			a.failed[key] = time.Now()
		}
		logIt := err != nil && !a.refused[key] && n.stopped.Err() == nil
		if logIt {
			a.refused[key] = true
		}
		a.mu.Unlock()
		if logIt {
			n.logger.Warn("not adding member to Raft: its Raft/RPC port failed the TLS check", "member", m.Name, "raft_addr", m.RaftAddr, "error", err)
		}
		if err == nil {
			n.gossip.wake()
		}
	})
	return false
}
