package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/fsm"
	"github.com/interlockraft/interlock/transport"
)

// The operator's two changes to the Raft group by hand: removing a dead
// peer before autopilot would (or with DisableDeadServerCleanup set), and
// moving leadership, for instance off a node about to be drained.

// RemovePeer removes the node called name from the Raft configuration,
// through the leader (this node forwards the request if it does not
// lead), then releases the node's locks, job registrations and run leases.
// It is meant for a peer that died and will not come back under its name:
// a live one would be added back at once, so RemovePeer refuses a node
// that gossip sees alive (ErrPeerAlive); stop it first, or let it leave by
// Shutdown. It refuses this node itself (ErrRemoveSelf) and a name that is
// not in the configuration (ErrUnknownPeer). It retries across leader
// changes until ctx ends. Safe for concurrent use.
func (n *Node) RemovePeer(ctx context.Context, name string) error {
	if name == "" {
		return fmt.Errorf("%w: RemovePeer needs a node name", ErrUnknownPeer)
	}
	if name == n.cfg.NodeName {
		return fmt.Errorf("%w: %s is this node; call RemovePeer on another node once it is dead, or Shutdown it to leave gracefully", ErrRemoveSelf, name)
	}
	servers, err := n.configuration()
	if err != nil {
		return err
	}
	var ids []raft.ServerID
	var names []string
	for _, s := range servers {
		names = append(names, nameOf(s.ID))
		if nameOf(s.ID) == name {
			ids = append(ids, s.ID)
		}
	}
	if len(ids) == 0 {
		return fmt.Errorf("%w: %q; the servers are %s", ErrUnknownPeer, name, strings.Join(names, ", "))
	}
	for _, id := range ids {
		if m, ok := n.memberByID(id); ok && m.Status == StatusAlive && !m.Leaving {
			return fmt.Errorf("%w: %s answers gossip at %s, so the leader would add it back; stop it first (its Shutdown leaves the cluster by itself)", ErrPeerAlive, name, m.GossipAddr)
		}
	}
	for _, id := range ids {
		if err := n.removeThroughLeader(ctx, id); err != nil {
			return fmt.Errorf("remove peer %s: %w", name, err)
		}
	}
	n.logger.Info("removed peer by request", "server", name)
	if !n.nameAlive(name) {
		if _, err := n.propose(ctx, fsm.EncodeNodeRelease(name)); err != nil {
			return fmt.Errorf("peer %s removed, but releasing its locks and leases failed (they expire by their TTLs): %w", name, err)
		}
	}
	return nil
}

// configuration returns the Raft configuration's servers.
func (n *Node) configuration() ([]raft.Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", err)
	}
	return f.Configuration().Servers, nil
}

// removeThroughLeader removes server id on the leader: locally if this
// node leads, otherwise by the leave RPC that leaving nodes use. A remove
// may be asked again after an unknown outcome: removing a removed server
// changes nothing.
func (n *Node) removeThroughLeader(ctx context.Context, id raft.ServerID) error {
	return n.onLeader(ctx, methodLeave, []byte(id), true, func() error { return n.removeServer(id) })
}

// onLeader runs local if this node leads, or otherwise sends method with
// req to the leader, each attempt bounded by ProposeTimeout. It asks again,
// with a growing pause, while no leader is known or the node it asked no
// longer leads, and, if retryUnknown, after an unknown outcome; only an
// operation that is harmless to repeat may set it. It gives up when ctx
// ends, with an error wrapping both ctx's and the last attempt's, or when
// the node shuts down.
func (n *Node) onLeader(ctx context.Context, method transport.Method, req []byte, retryUnknown bool, local func() error) error {
	backoff := 10 * time.Millisecond
	for {
		var err error
		addr, leader := n.raft.LeaderWithID()
		switch {
		case n.shuttingDown():
			return ErrShutdown
		case leader == n.raftID:
			err = local()
		case leader != "":
			cctx, cancel := context.WithTimeout(ctx, n.cfg.ProposeTimeout)
			_, err = n.rpc.Call(cctx, string(addr), method, req)
			cancel()
			if err = fromRemote(err); err != nil {
				err = fmt.Errorf("through the leader %s: %w", nameOf(leader), err)
			}
		default:
			err = fmt.Errorf("%w: %s knows no leader", ErrNoLeader, n.cfg.NodeName)
		}
		retry := errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNoLeader) || (retryUnknown && errors.Is(err, ErrOutcomeUnknown))
		if err == nil || !retry {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-n.shutdownCh:
			return ErrShutdown
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// TransferLeadership hands leadership from the leader to the voter called
// to, or, with to "", to the most up-to-date other voter, and returns once
// Raft has finished the transfer or given up (within about an election
// timeout). Any node may be asked: a follower forwards the request to the
// leader, and asks again if leadership moved before the leader served it,
// for at most ProposeTimeout. With no leader known by then it returns an
// error wrapping ErrNoLeader. A to that is not a voter of the
// configuration gives ErrUnknownPeer; to naming the leader does nothing.
// Safe for concurrent use.
func (n *Node) TransferLeadership(ctx context.Context, to string) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ProposeTimeout)
	defer cancel()
	// Not asked again after an unknown outcome: the leader may have handed
	// over already, and a second transfer would move leadership again.
	return n.onLeader(ctx, methodTransfer, []byte(to), false, func() error { return n.transferLocal(ctx, to) })
}

// transferLocal is TransferLeadership on the leader itself, which also
// serves the requests followers forward (methodTransfer).
func (n *Node) transferLocal(ctx context.Context, to string) error {
	if !n.IsLeader() {
		return fmt.Errorf("%w: %s no longer leads", ErrNotLeader, n.cfg.NodeName)
	}
	var f raft.Future
	if to == "" {
		f = n.raft.LeadershipTransfer()
	} else {
		if to == n.cfg.NodeName {
			return nil
		}
		servers, err := n.configuration()
		if err != nil {
			return err
		}
		var target *raft.Server
		var voters []string
		for i, s := range servers {
			if s.Suffrage != raft.Voter {
				continue
			}
			voters = append(voters, nameOf(s.ID))
			if nameOf(s.ID) == to {
				target = &servers[i]
			}
		}
		if target == nil {
			return fmt.Errorf("%w: %q is not a voter; the voters are %s", ErrUnknownPeer, to, strings.Join(voters, ", "))
		}
		f = n.raft.LeadershipTransferToServer(target.ID, target.Address)
	}
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("transfer leadership from %s: %w", n.cfg.NodeName, err)
		}
		n.logger.Info("transferred leadership by request", "to", to)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("transfer leadership from %s: %w (Raft may still finish it)", n.cfg.NodeName, ctx.Err())
	case <-n.shutdownCh:
		return ErrShutdown
	}
}
