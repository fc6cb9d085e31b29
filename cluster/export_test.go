package cluster

// RaftApply commits cmd through n's Raft directly, bypassing the batcher,
// forwarding and the lock table. Benchmarks use it as the baseline that
// Interlock's own path is measured against. n must be the leader.
func RaftApply(n *Node, cmd []byte) error {
	return n.raft.Apply(cmd, n.cfg.ProposeTimeout).Error()
}
