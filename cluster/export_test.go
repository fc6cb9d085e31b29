package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// RaftApply commits cmd through n's Raft directly, bypassing the batcher,
// forwarding and the lock table. Benchmarks use it as the baseline that
// Interlock's own path is measured against. n must be the leader.
func RaftApply(n *Node, cmd []byte) error {
	return n.raft.Apply(cmd, n.cfg.ProposeTimeout).Error()
}

// SetLookupHost makes a node started with c resolve its Join names with f
// instead of DNS, so a test decides what a name resolves to and when.
func SetLookupHost(c *Config, f func(ctx context.Context, host string) ([]string, error)) {
	c.lookupHost = f
}

// SetTuneGossip makes a node started with c pass its memberlist
// configuration through f before gossip starts: tests shorten gossip's
// timings and cut gossip between nodes with it.
func SetTuneGossip(c *Config, f func(*memberlist.Config)) {
	c.tuneGossip = f
}

// RaftHeartbeatTimeout returns the HeartbeatTimeout n's Raft runs with now,
// which differs from the configured one while n leads (cadence.go).
func RaftHeartbeatTimeout(n *Node) time.Duration {
	return n.raft.ReloadableConfig().HeartbeatTimeout
}

// RaftLastContact returns when n last heard from a Raft leader.
func RaftLastContact(n *Node) time.Time { return n.raft.LastContact() }

// OnRaftState calls f, in Raft's own goroutine and so at the moment it
// happens, with each state n's Raft enters, until the returned stop is
// called. f must be quick and safe for concurrent use.
func OnRaftState(n *Node, f func(raft.RaftState)) (stop func()) {
	obs := raft.NewObserver(nil, false, func(o *raft.Observation) bool {
		if s, ok := o.Data.(raft.RaftState); ok {
			f(s)
		}
		return false
	})
	n.raft.RegisterObserver(obs)
	return func() { n.raft.DeregisterObserver(obs) }
}
