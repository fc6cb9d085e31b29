package cluster

import (
	"crypto/sha256"
	"encoding/hex"
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
	var inCluster []Member
	for _, m := range n.members() {
		if m.Status != StatusAlive {
			continue
		}
		if m.InCluster && m.Name != n.cfg.NodeName {
			inCluster = append(inCluster, m)
			continue
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
	if len(inCluster) > 0 {
		// An existing cluster will add us, unless a peer has just
		// bootstrapped one that lists this very process: then bootstrap
		// the identical configuration (see below).
		conf, ok := n.peerBootstrap(inCluster)
		if !ok {
			return false
		}
		return n.bootstrap(conf)
	}
	if len(alive) < n.cfg.BootstrapExpect {
		return false
	}
	chosen := alive[:n.cfg.BootstrapExpect]
	if !slices.ContainsFunc(chosen, func(m Member) bool { return m.Name == n.cfg.NodeName }) {
		return false
	}
	return n.bootstrap(n.bootConfiguration(chosen))
}

// bootConfiguration is the first configuration for the chosen members:
// voters up to MaxVoters, then non-voters.
func (n *Node) bootConfiguration(chosen []Member) raft.Configuration {
	var conf raft.Configuration
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
	}
	return conf
}

// bootstrap bootstraps conf and gossips its fingerprint.
func (n *Node) bootstrap(conf raft.Configuration) bool {
	var names []string
	for _, s := range conf.Servers {
		names = append(names, nameOf(s.ID))
	}
	err := n.raft.BootstrapCluster(conf).Error()
	switch {
	case err == nil:
		n.logger.Info("bootstrapped cluster", "servers", names)
		fp := fingerprint(conf)
		n.setMeta(func(m *meta) { m.Boot = fp })
	case errors.Is(err, raft.ErrCantBootstrap):
		// Already has state: a concurrent path bootstrapped, nothing to do.
	default:
		n.logger.Error("bootstrap failed", "servers", names, "error", err)
		return false
	}
	return true
}

// peerBootstrap returns the configuration a peer in inCluster has just
// bootstrapped, when it lists this process's own Raft ID and this node's
// gossip yields the identical configuration. A memory-only node refuses
// votes until its own ID is a voter in its own configuration
// (identity.go), so a node the bootstrapper chose must hold that
// configuration itself rather than wait to be added through an election
// it would not vote in. raft.BootstrapCluster needs every node to use an
// identical configuration: the fingerprint, over IDs, addresses and
// suffrage, shows it is. A restarted node never matches, as its fresh
// incarnation is in no earlier bootstrap.
func (n *Node) peerBootstrap(inCluster []Member) (raft.Configuration, bool) {
	var alive []Member
	for _, m := range n.members() {
		if m.Status != StatusAlive {
			continue
		}
		if m.RaftAddr == "" {
			return raft.Configuration{}, false
		}
		alive = append(alive, m)
	}
	if len(alive) < n.cfg.BootstrapExpect {
		return raft.Configuration{}, false
	}
	// The bootstrapper chose the first BootstrapExpect names it saw.
	conf := n.bootConfiguration(alive[:n.cfg.BootstrapExpect])
	if !slices.ContainsFunc(conf.Servers, func(s raft.Server) bool { return s.ID == n.raftID }) {
		return raft.Configuration{}, false
	}
	fp := fingerprint(conf)
	for _, peer := range inCluster {
		if peer.boot == fp {
			return conf, true
		}
	}
	return raft.Configuration{}, false
}

// fingerprint identifies a configuration by its servers' IDs, addresses
// and suffrage, in order.
func fingerprint(conf raft.Configuration) string {
	h := sha256.New()
	for _, s := range conf.Servers {
		fmt.Fprintf(h, "%s\x00%s\x00%d\x00", s.ID, s.Address, s.Suffrage)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// hasConfiguration reports whether Raft knows any server, from a bootstrap,
// from stored state, or from a leader that added us.
func (n *Node) hasConfiguration() bool {
	f := n.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}
