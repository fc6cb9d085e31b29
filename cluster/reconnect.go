package cluster

import (
	"context"
	"slices"
	"time"
)

// The reconnect loop keeps gossip whole after Start, as Serf's reconnect
// loop and Consul's retry-join do. memberlist alone does not: it stops
// gossiping to a member that has been dead for GossipToTheDeadTime (30 s on
// a LAN) and forgets it, and its push/pull picks only live members, so the
// two sides of a longer partition would each keep the other failed forever,
// and the leader, after DeadServerTimeout, removes the far side from Raft
// for good. Each pass of the loop:
//
//   - resolves the Join names again, and joins every resolved address that
//     is not a live member (a replaced task, a scaled-up service);
//   - tries every member this node holds as failed (a healed partition);
//   - forgets members failed or left for longer than ReconnectTimeout.
//
// A pass runs every RejoinInterval, or every ReconnectInterval while the
// node sees fewer live members than it expects, and at once when a member
// fails. Once gossip is whole again, the leader's reconcile (reconcile.go)
// adds a member that autopilot removed back to Raft as a voter.

// reconnect is the node's reconnect loop. It runs from the end of Start
// until shutdown.
func (n *Node) reconnect() {
	// Passes end at shutdown, not only at their own timeout.
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	n.goFunc(func() {
		select {
		case <-n.shutdownCh:
			cancel()
		case <-base.Done():
		}
	})
	last := time.Now()
	timer := time.NewTimer(n.reconnectInterval())
	defer timer.Stop()
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-n.gossip.lost:
		case <-timer.C:
		}
		if wait := n.reconnectInterval() - time.Since(last); wait > 0 {
			timer.Reset(wait)
			continue
		}
		n.reconnectPass(base)
		last = time.Now()
		timer.Reset(n.reconnectInterval())
	}
}

// reconnectInterval is the wait between two passes: ReconnectInterval
// while the node is short of members, else RejoinInterval.
func (n *Node) reconnectInterval() time.Duration {
	if n.shortOfMembers() {
		return n.cfg.ReconnectInterval
	}
	return n.cfg.RejoinInterval
}

// shortOfMembers reports whether gossip shows fewer live members, this node
// included, than the node expects: BootstrapExpect, or the size of its
// Raft configuration if that is larger.
func (n *Node) shortOfMembers() bool {
	expect := n.cfg.BootstrapExpect
	f := n.raft.GetConfiguration()
	if f.Error() == nil {
		expect = max(expect, len(f.Configuration().Servers))
	}
	alive := 0
	for _, m := range n.members() {
		if m.Status == StatusAlive && !m.Leaving {
			alive++
		}
	}
	return alive < expect
}

// reconnectPass does one pass of the loop. Its lookups are bounded by
// ReconnectInterval and end at shutdown; its joins run on their own.
func (n *Node) reconnectPass(base context.Context) {
	if gone := n.gossip.forget(time.Now().Add(-n.cfg.ReconnectTimeout)); len(gone) > 0 {
		n.logger.Info("forgot members failed or left longer than ReconnectTimeout", "members", gone, "after", n.cfg.ReconnectTimeout)
	}
	ctx, cancel := context.WithTimeout(base, n.cfg.ReconnectInterval)
	defer cancel()

	live := make(map[string]bool)
	var failed []Member
	for _, m := range n.members() {
		switch {
		case m.Name == n.cfg.NodeName:
		case m.Status == StatusAlive || m.Status == StatusSuspect:
			live[m.GossipAddr] = true
		case m.Status == StatusFailed:
			failed = append(failed, m)
		}
	}
	var targets []string
	add := func(addr string) {
		if addr != "" && !live[addr] && !n.isSelf(addr) && !slices.Contains(targets, addr) {
			targets = append(targets, addr)
		}
	}
	if len(n.cfg.Join) > 0 {
		addrs, err := n.resolveJoin(ctx)
		if err != nil {
			n.logger.Debug("reconnect: resolve join", "join", n.cfg.Join, "error", err)
		}
		for _, a := range addrs {
			add(a)
		}
	}
	for _, m := range failed {
		add(m.GossipAddr)
	}
	for _, addr := range targets {
		n.tryJoin(addr)
	}
}

// tryJoin pushes and pulls gossip state with addr on its own goroutine,
// unless a join of addr is already under way. memberlist's join of an
// address that drops packets takes its whole TCP timeout (10 s); the pass
// does not wait for it, so one dead address never delays the others, and
// its dial ends when the node stops (gossipnet.go).
func (n *Node) tryJoin(addr string) {
	n.joiningMu.Lock()
	if n.joining == nil {
		n.joining = make(map[string]struct{})
	}
	if _, busy := n.joining[addr]; busy {
		n.joiningMu.Unlock()
		return
	}
	n.joining[addr] = struct{}{}
	n.joiningMu.Unlock()
	n.goFunc(func() {
		defer func() {
			n.joiningMu.Lock()
			delete(n.joining, addr)
			n.joiningMu.Unlock()
		}()
		before := n.ml.NumMembers()
		if _, err := n.ml.Join([]string{addr}); err != nil {
			n.logger.Debug("reconnect: join", "addr", addr, "error", err)
			return
		}
		if after := n.ml.NumMembers(); after > before {
			n.logger.Info("rejoined gossip", "addr", addr, "members", after)
		} else {
			n.logger.Debug("reconnect: joined a known member", "addr", addr)
		}
	})
}
