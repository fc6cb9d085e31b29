package cluster

// RaftSnapshot makes n's Raft take a snapshot now and compact its log down
// to TrailingLogs, so a follower that lags behind must install it.
func RaftSnapshot(n *Node) error { return n.raft.Snapshot().Error() }

// RaftStat returns one of n's Raft statistics, such as last_snapshot_index.
func RaftStat(n *Node, key string) string { return n.raft.Stats()[key] }
