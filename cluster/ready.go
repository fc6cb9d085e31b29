package cluster

import "fmt"

// readyLag is how many committed entries a node may have left to apply
// and still count as ready. Under load a follower is always a few entries
// behind what it knows is committed; a probe that demanded zero would
// flap. Start has already waited for a full catch-up once.
const readyLag = 1024

// Ready reports whether the node can serve: it returns nil when the node
// can write its DataDir (diskhealth.go), is in the Raft configuration, a
// leader is known and the node has applied (nearly) all it knows to be
// committed, and otherwise an error wrapping ErrNotReady that says which
// of these is missing. GET /readyz answers by
// it. It reads local state only and is safe for concurrent use.
func (n *Node) Ready() error {
	if n.leavingOrDown() {
		return fmt.Errorf("%w: node %s is shutting down: %w", ErrNotReady, n.cfg.NodeName, ErrShutdown)
	}
	if err := n.diskHealth(); err != nil {
		return fmt.Errorf("%w: node %s cannot write its DataDir: %w", ErrNotReady, n.cfg.NodeName, err)
	}
	if !n.inConfiguration() {
		if leader := n.Leader(); leader != "" {
			return fmt.Errorf("%w: node %s is not in the Raft configuration; leader %s has not added it yet", ErrNotReady, n.cfg.NodeName, leader)
		}
		return fmt.Errorf("%w: node %s is not in the Raft configuration and knows no leader; has it joined a cluster?", ErrNotReady, n.cfg.NodeName)
	}
	if n.Leader() == "" {
		return fmt.Errorf("%w: node %s knows no leader; an election is running or a quorum of voters is down", ErrNotReady, n.cfg.NodeName)
	}
	commit, applied := n.raft.CommitIndex(), n.raft.AppliedIndex()
	if commit == 0 || (commit > applied && commit-applied > readyLag) {
		return fmt.Errorf("%w: node %s is catching up with the log: applied %d of %d committed entries", ErrNotReady, n.cfg.NodeName, applied, commit)
	}
	return nil
}
