package cluster

import (
	"errors"
	"fmt"
	"slices"

	"github.com/hashicorp/raft"
)

// tryBootstrap forms a new cluster once BootstrapExpect members are seen,
// following Nomad's bootstrap-expect flow. It returns true once this node
// no longer needs to bootstrap: it has Raft state, or some peer already
// belongs to a cluster (its leader will add us), or it bootstrapped.
//
// Every node that sees the same members picks the same server list: the
// BootstrapExpect alphabetically first names. A node outside that list never
// bootstraps; it waits to be added. So concurrent starts agree on one
// configuration, which is what raft.BootstrapCluster requires.
func (n *Node) tryBootstrap() bool {
	if n.hasConfiguration() {
		return true
	}
	if n.cfg.BootstrapExpect == 0 {
		return false
	}
	var alive []Member
	for _, m := range n.members() {
		if m.Status != StatusAlive {
			continue
		}
		if m.InCluster && m.Name != n.cfg.NodeName {
			return false // an existing cluster will add us
		}
		if m.expect != 0 && m.expect != n.cfg.BootstrapExpect {
			err := fmt.Errorf("%w: node %s has BootstrapExpect=%d, this node %s has %d; give every node of a new cluster the same value",
				ErrBootstrapMismatch, m.Name, m.expect, n.cfg.NodeName, n.cfg.BootstrapExpect)
			n.startErr.CompareAndSwap(nil, &err)
			return false
		}
		if m.RaftAddr == "" {
			return false // its meta is not final yet
		}
		alive = append(alive, m)
	}
	if len(alive) < n.cfg.BootstrapExpect {
		return false
	}
	chosen := alive[:n.cfg.BootstrapExpect]
	if !slices.ContainsFunc(chosen, func(m Member) bool { return m.Name == n.cfg.NodeName }) {
		return false
	}
	var conf raft.Configuration
	names := make([]string, 0, len(chosen))
	for i, m := range chosen {
		suffrage := raft.Voter
		if i >= n.cfg.MaxVoters {
			suffrage = raft.Nonvoter
		}
		conf.Servers = append(conf.Servers, raft.Server{
			ID:       m.raftID(),
			Address:  raft.ServerAddress(m.RaftAddr),
			Suffrage: suffrage,
		})
		names = append(names, m.Name)
	}
	err := n.raft.BootstrapCluster(conf).Error()
	switch {
	case err == nil:
		n.logger.Info("bootstrapped cluster", "servers", names)
	case errors.Is(err, raft.ErrCantBootstrap):
		// Already has state: a concurrent path bootstrapped, nothing to do.
	default:
		n.logger.Error("bootstrap failed", "servers", names, "error", err)
		return false
	}
	return true
}

// hasConfiguration reports whether Raft knows any server, from a bootstrap,
// from stored state, or from a leader that added us.
func (n *Node) hasConfiguration() bool {
	f := n.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}
