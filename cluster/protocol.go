package cluster

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/fsm"
)

// Rolling upgrades. Every node gossips the highest fsm protocol version it
// speaks (meta.Protocol). A command type that a newer protocol introduced
// is proposed only once every server in the Raft configuration, voter or
// not, advertises that version: every server applies every committed
// entry, so one server that cannot would halt there (fsm.ErrHalted). The
// check runs where a command enters the log: on the node that proposes it
// and again on the leader for a forwarded one, so an old leader, which
// checks nothing, still only receives commands a new node has checked.
// A server the node's gossip does not know counts as unable. Once a newer
// command is committed, no older build may join or restart on any DataDir
// that has it: such a node halts at that entry, reports it unready and
// serves no state (docs/architecture.md).

// protocolCacheTTL bounds how stale the protocol floor used for the run
// history may be. Leaving the history out only loses history entries, so a
// cheap cached answer is good enough there; pause and run-now check afresh.
const protocolCacheTTL = time.Second

// protocolCache holds the last computed protocol floor of the cluster.
type protocolCache struct {
	mu    sync.Mutex
	at    time.Time
	floor int
}

// advertisedProtocol is the protocol version this node gossips.
func (n *Node) advertisedProtocol() int {
	if p := n.gossip.meta.Load(); p != nil {
		if m, err := decodeMeta(*p); err == nil && m.Protocol != 0 {
			return m.Protocol
		}
	}
	if n.cfg.protocol != 0 {
		return n.cfg.protocol
	}
	return fsm.ProtocolVersion
}

// admit decides whether cmd may enter the log through this node: a command
// of a type this build does not know is refused as the state machine would,
// without committing it; one of a newer protocol only once every server
// speaks it (a claim that may be granted out of order is turned into a
// plain one instead, in place); and nothing this node proposes itself
// while its DataDir fails or its state machine has halted, whose state is
// stale. Commands that every server applies alike (including malformed
// ones, which every state machine rejects the same way) pass.
func (n *Node) admit(cmd []byte, remote bool) error {
	if !remote {
		if err := n.diskHealth(); err != nil {
			return err
		}
		if err := n.protocolHealth(); err != nil {
			return err
		}
	}
	h, err := fsm.PeekHeader(cmd)
	if err != nil {
		return nil
	}
	switch v := h.Type.Protocol(); {
	case v == 0:
		return fmt.Errorf("%w: %s; this node speaks protocol %d", fsm.ErrUnknownCommand, h.Type, fsm.ProtocolVersion)
	case h.Type == fsm.CommandClaimAnyOrder:
		// A claim is due now, and the proposer's cached floor may be a
		// second older than this one: rather than fail a tick, send it
		// as a plain claim, which every server applies.
		if n.requireProtocol(h.Type.String(), v) != nil {
			return fsm.ClaimInOrder(cmd)
		}
	case v > fsm.ProtocolBase:
		return n.requireProtocol(h.Type.String(), v)
	}
	return nil
}

// requireProtocol returns nil if every server in the Raft configuration
// advertises protocol version v or later, and otherwise an error wrapping
// ErrProtocol that names the first server that does not.
func (n *Node) requireProtocol(what string, v int) error {
	floor, server, err := n.protocolFloor()
	if err != nil {
		return fmt.Errorf("%s needs every server on protocol >= %d: %w", what, v, err)
	}
	if floor >= v {
		return nil
	}
	if floor == 0 {
		return fmt.Errorf("%w: %s needs every server on protocol >= %d; %s is not in this node's gossip, so its version is unknown", ErrProtocol, what, v, server)
	}
	return fmt.Errorf("%w: %s needs every server on protocol >= %d; %s runs %d", ErrProtocol, what, v, server, floor)
}

// protocolFloor returns the lowest protocol version among the servers in
// the Raft configuration and the first server (by name) that has it; 0
// for a server gossip does not know.
func (n *Node) protocolFloor() (int, string, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return 0, "", fmt.Errorf("read Raft configuration: %w", err)
	}
	known := make(map[raft.ServerID]int)
	for _, m := range n.members() {
		known[m.raftID()] = max(m.protocol, fsm.ProtocolBase)
	}
	servers := slices.Clone(f.Configuration().Servers)
	slices.SortFunc(servers, func(a, b raft.Server) int { return cmp.Compare(a.ID, b.ID) })
	floor, who := fsm.ProtocolVersion, ""
	for _, s := range servers {
		v := known[s.ID]
		if s.ID == n.raftID {
			v = n.advertisedProtocol()
		}
		if v < floor {
			floor, who = v, nameOf(s.ID)
		}
	}
	return floor, who, nil
}

// speaks reports, from a floor at most protocolCacheTTL old, whether every
// server speaks protocol version v. An unreadable configuration counts as
// no.
func (n *Node) speaks(v int) bool {
	c := &n.protocols
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) > protocolCacheTTL {
		floor, _, err := n.protocolFloor()
		if err != nil {
			floor = 0
		}
		c.floor, c.at = floor, time.Now()
	}
	return c.floor >= v
}

// finishedRuns returns finished unless some server may not speak
// fsm.ProtocolJobControl: older servers skip the history of a run update
// but would then be sent snapshots in a format they cannot read.
func (n *Node) finishedRuns(finished []fsm.Finished) []fsm.Finished {
	if len(finished) == 0 || n.speaks(fsm.ProtocolJobControl) {
		return finished
	}
	return nil
}

// halted is the state machine's halt notifier: it met an entry of a newer
// protocol. watchHealth hands over leadership; protocolHealth reports it.
func (n *Node) halted(err error) {
	n.logger.Error("state machine halted on an entry of a newer protocol; this node serves no state until it runs a newer build", "error", err)
	n.disk.poke()
}

// protocolHealth returns nil while the state machine applies entries, and
// the reason once it halted on an entry of a newer protocol (wrapping
// fsm.ErrHalted). Readiness reports it.
func (n *Node) protocolHealth() error {
	if n.fsm == nil {
		return nil
	}
	return n.fsm.Halted()
}
