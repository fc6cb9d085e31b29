package cluster

// BatchCounts returns how many Raft entries n's batcher has proposed while
// n led, and how many commands they carried.
func BatchCounts(n *Node) (entries, commands uint64) {
	return n.batches.entries.Load(), n.batches.commands.Load()
}
