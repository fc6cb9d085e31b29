package cluster

import (
	"github.com/hashicorp/raft"
)

// raftIDFor returns the Raft server ID a node started with cfg uses.
func raftIDFor(cfg Config) raft.ServerID {
	return raft.ServerID(cfg.NodeName)
}

// nameOf returns the NodeName of the server with Raft ID id.
func nameOf(id raft.ServerID) string {
	return string(id)
}
