package cluster

import (
	"context"

	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/fsm"
)

// SetProtocol makes a node started with c advertise protocol version v
// instead of fsm.ProtocolVersion, as an older build would.
func SetProtocol(c *Config, v int) { c.protocol = v }

// Advertise makes the running node n gossip protocol version v from now
// on, as if it had been replaced by a build that speaks v.
func Advertise(n *Node, v int) {
	n.setMeta(func(m *meta) { m.Protocol = v })
}

// DiskHealth returns n's diskHealth.
func DiskHealth(n *Node) error { return n.diskHealth() }

// ProtocolHealth returns n's protocolHealth.
func ProtocolHealth(n *Node) error { return n.protocolHealth() }

// FinishedRuns returns what n would send of finished in a run update.
func FinishedRuns(n *Node, finished []fsm.Finished) []fsm.Finished { return n.finishedRuns(finished) }

// Propose sends cmd through n's propose path as the batcher does, without
// the proposing node's own admission check, so the leader's is tested.
func Propose(n *Node, ctx context.Context, cmd []byte) ([]byte, error) { return n.propose(ctx, cmd) }

// TransferTo hands n's leadership to the server named to.
func TransferTo(n *Node, to *Node) error {
	return n.raft.LeadershipTransferToServer(to.raftID, raft.ServerAddress(to.raftAddr)).Error()
}

// Snapshot makes n take a Raft snapshot now.
func Snapshot(n *Node) error { return n.raft.Snapshot().Error() }

// AdvertiseDropped changes the protocol version in n's gossip meta without
// announcing it, leaving memberlist's entry for n with the old meta, as
// when memberlist drops an UpdateNode that a refutation overtook.
func AdvertiseDropped(n *Node, v int) {
	n.metaMu.Lock()
	defer n.metaMu.Unlock()
	cur, _ := decodeMeta(*n.gossip.meta.Load())
	cur.Protocol = v
	n.gossip.setMeta(cur)
}

// MemberProtocol returns the protocol version n's gossip shows for the
// member named name, 0 if none.
func MemberProtocol(n *Node, name string) int {
	for _, m := range n.members() {
		if m.Name == name {
			return m.protocol
		}
	}
	return 0
}
