package cluster

import (
	"io"

	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/transport"
)

// targetedTransport is the node's Raft transport: raft.NetworkTransport
// over the node's RaftLayer, with every outbound RPC's address naming the
// server it is meant for (transport.RaftTarget). A process that holds a
// configured server's address but serves another ID then refuses the
// stream, instead of taking this node's leader as its own, and the leader
// sees the server as unreachable, which is what it is. Its methods are
// safe for concurrent use, as NetworkTransport's are.
type targetedTransport struct {
	*raft.NetworkTransport
}

var (
	_ raft.WithClose   = targetedTransport{}
	_ raft.WithPreVote = targetedTransport{}
)

func (t targetedTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := t.NetworkTransport.AppendEntriesPipeline(id, transport.RaftTarget(id, target))
	if err != nil {
		return nil, err
	}
	return newDrainedPipeline(p), nil
}

func (t targetedTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	return t.NetworkTransport.AppendEntries(id, transport.RaftTarget(id, target), args, resp)
}

func (t targetedTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return t.NetworkTransport.RequestVote(id, transport.RaftTarget(id, target), args, resp)
}

func (t targetedTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.NetworkTransport.RequestPreVote(id, transport.RaftTarget(id, target), args, resp)
}

func (t targetedTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	return t.NetworkTransport.InstallSnapshot(id, transport.RaftTarget(id, target), args, resp, data)
}

func (t targetedTransport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return t.NetworkTransport.TimeoutNow(id, transport.RaftTarget(id, target), args, resp)
}
