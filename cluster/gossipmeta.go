package cluster

import (
	"bytes"
	"time"
)

// setMetaWait bounds how long setMeta waits for memberlist to finish
// broadcasting the new meta. A leaving node relies on it: its Leaving flag
// should be on the wire before it leaves Raft.
const setMetaWait = time.Second

// setMeta applies f to this node's gossip meta and announces the result.
// It is safe for concurrent use: metaMu makes the read, change, store and
// announcement one step, so two callers (the maintenance loop setting
// InCluster and Shutdown setting Leaving, say) cannot lose each other's
// field or announce an older meta under a newer incarnation.
func (n *Node) setMeta(f func(*meta)) {
	n.metaMu.Lock()
	defer n.metaMu.Unlock()
	cur, _ := decodeMeta(*n.gossip.meta.Load())
	f(&cur)
	n.gossip.setMeta(cur)
	n.announceMetaLocked(setMetaWait)
}

// announceMeta makes gossip carry this node's current meta if memberlist's
// entry for this node holds another. The maintenance loop calls it on each
// pass. It is needed because memberlist can drop an update for good: if a
// refutation of a suspicion (frequent on a loaded machine) takes the next
// incarnation number while UpdateNode waits for memberlist's lock,
// UpdateNode's own, lower, incarnation is discarded, the entry keeps the
// old meta under the newer number, and push/pull spreads that old meta.
// A node upgraded to a newer protocol then stayed on the old one in its
// peers' view indefinitely.
//
// It is safe for concurrent use and never blocks: while a setMeta holds
// metaMu, that call announces, and this pass leaves it alone. The loop
// must not wait there, as the leader's loop is what removes leaving
// servers while its own Shutdown may be announcing its leave.
func (n *Node) announceMeta() {
	if !n.metaMu.TryLock() {
		return
	}
	defer n.metaMu.Unlock()
	// Whether the broadcast has gone out does not matter here; a
	// dropped one is found again on the next pass.
	n.announceMetaLocked(time.Millisecond)
}

// announceMetaLocked is announceMeta for a caller holding metaMu; it waits
// up to wait for the broadcast.
func (n *Node) announceMetaLocked(wait time.Duration) {
	if n.ml == nil {
		return
	}
	want := *n.gossip.meta.Load()
	// A second try covers an update dropped as announceMeta describes,
	// for callers such as Shutdown after which no loop pass follows.
	for range 2 {
		if bytes.Equal(n.ml.LocalNode().Meta, want) {
			return
		}
		// UpdateNode reads the meta afresh from the delegate and takes a
		// new incarnation, above any refutation's.
		if err := n.ml.UpdateNode(wait); err != nil {
			n.logger.Debug("gossip meta update not yet propagated", "error", err)
		}
	}
}
