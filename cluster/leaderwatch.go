package cluster

import (
	"sync"

	"github.com/hashicorp/raft"
)

// leaderWatch tells waiters that the leader this node knows has changed.
// A forwarded proposal waits on it, so that an RPC to a leader that was
// partitioned away or replaced is abandoned as soon as a new leader is
// known, rather than after its full timeout: each node keeps one batch in
// flight (batch.go), so a hung forward would hold up every proposal behind
// it. Its methods are safe for concurrent use.
type leaderWatch struct {
	mu      sync.Mutex
	changed chan struct{}
}

func newLeaderWatch() *leaderWatch { return &leaderWatch{changed: make(chan struct{})} }

// next returns a channel that is closed at the next leader change. Take it
// before reading the leader, so that a change in between is not missed.
func (w *leaderWatch) next() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}

func (w *leaderWatch) fire() {
	w.mu.Lock()
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
}

// watchLeader runs until shutdown, firing n.leaders on every leader
// observation from Raft and counting each change to a new, known leader
// in the metrics.
func (n *Node) watchLeader() {
	ch := make(chan raft.Observation, 4)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.raft.RegisterObserver(obs)
	defer n.raft.DeregisterObserver(obs)
	var last raft.ServerID
	for {
		select {
		case o := <-ch:
			n.leaders.fire()
			if id := o.Data.(raft.LeaderObservation).LeaderID; id != "" {
				if id != last {
					n.metrics.leaderChanged()
				}
				last = id
			}
		case <-n.shutdownCh:
			return
		}
	}
}
