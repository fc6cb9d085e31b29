package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// meta is what each node gossips about itself. memberlist caps it at 512
// bytes, so keys are short and only facts other nodes must know before
// Raft can tell them go here.
type meta struct {
	Version int    `json:"v"`
	Cluster string `json:"c"`
	// RaftAddr is where Raft and RPC reach this node.
	RaftAddr string `json:"r"`
	// Expect is the node's BootstrapExpect.
	Expect int `json:"e"`
	// InCluster is set once the node has Raft state, so nobody bootstraps a
	// second cluster around it.
	InCluster bool `json:"s,omitempty"`
	// Leaving is set just before a graceful leave, so the leader does not
	// add the node back between its removal and its gossip leave.
	Leaving bool `json:"l,omitempty"`
	// ID is the node's Raft server ID when it differs from its name
	// (identity.go).
	ID string `json:"i,omitempty"`
	// Boot fingerprints the configuration this process bootstrapped, so
	// the other nodes it chose can bootstrap the identical one instead of
	// waiting for a vote that a memory-only node would refuse
	// (bootstrap.go).
	Boot string            `json:"b,omitempty"`
	Tags map[string]string `json:"t,omitempty"` // Config.Tags (tags.go)
	// Protocol is the highest fsm protocol version the node speaks
	// (protocol.go). Nodes from before it was gossiped leave it out, which
	// reads as 0 and counts as fsm.ProtocolBase.
	Protocol int `json:"p,omitempty"`
}

const metaVersion = 1

func decodeMeta(b []byte) (meta, error) {
	var m meta
	if len(b) == 0 {
		return m, fmt.Errorf("empty metadata")
	}
	err := json.Unmarshal(b, &m)
	return m, err
}

// MemberStatus is a member's gossip state.
type MemberStatus int

const (
	// StatusAlive means the member answers probes.
	StatusAlive MemberStatus = iota
	// StatusSuspect means the member missed a probe and may be failing.
	StatusSuspect
	// StatusFailed means the member stopped answering without leaving.
	StatusFailed
	// StatusLeft means the member left gracefully.
	StatusLeft
)

// String returns the status's name.
func (s MemberStatus) String() string {
	switch s {
	case StatusAlive:
		return "alive"
	case StatusSuspect:
		return "suspect"
	case StatusFailed:
		return "failed"
	case StatusLeft:
		return "left"
	default:
		return "status(" + strconv.Itoa(int(s)) + ")"
	}
}

// Member is one node as gossip sees it.
type Member struct {
	Name       string
	GossipAddr string
	RaftAddr   string
	Status     MemberStatus
	InCluster  bool
	Leaving    bool
	// Tags are the member's Config.Tags, as it advertises them.
	Tags map[string]string
	// Since is when this node's gossip first saw the member in its
	// current Status.
	Since time.Time
	// updated is when this node last heard anything about the member.
	updated time.Time
	expect  int
	cluster string
	// id is the member's Raft server ID from its meta, "" for its name.
	id string
	// boot is the fingerprint of the configuration it bootstrapped.
	boot string
	// protocol is the fsm protocol version it advertises, 0 if none.
	protocol int
}

// raftID returns the member's Raft server ID.
func (m Member) raftID() raft.ServerID {
	if m.id != "" {
		return raft.ServerID(m.id)
	}
	return raft.ServerID(m.Name)
}

// gossipDelegate serves this node's metadata and keeps this node's own copy
// of the member list. memberlist calls it from its own goroutines, with its
// node lock held, so the callbacks copy what they need and never block: the
// *memberlist.Node values are mutated by memberlist later, and reading them
// outside the callbacks would race.
type gossipDelegate struct {
	meta   atomic.Pointer[[]byte]
	events chan struct{}
	// lost is signalled when a member fails, so the reconnect loop
	// (reconnect.go) looks for peers at once.
	lost     chan struct{}
	conflict atomic.Pointer[nameConflict]
	// self and selfAddr identify this node, to tell its own conflicts apart.
	self     string
	selfAddr atomic.Pointer[string]
	logger   hclog.Logger
	// askedToLeave, if set, returns when the named member asked this node,
	// as leader, to remove it from Raft (zero if it did not). It must not
	// block: record calls it with memberlist's lock held.
	askedToLeave func(name string) time.Time
	// keyring is memberlist's, nil without SecretKey (keyring.go).
	keyring *memberlist.Keyring

	mu      sync.Mutex
	members map[string]Member
}

func (d *gossipDelegate) setMeta(m meta) {
	b, _ := json.Marshal(m)
	d.meta.Store(&b)
}

func (d *gossipDelegate) NodeMeta(limit int) []byte {
	b := *d.meta.Load()
	if len(b) > limit {
		return nil
	}
	return b
}

func (d *gossipDelegate) NotifyMsg([]byte)                           {}
func (d *gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *gossipDelegate) LocalState(join bool) []byte                { return nil }
func (d *gossipDelegate) MergeRemoteState(buf []byte, join bool)     {}

func (d *gossipDelegate) wake() {
	select {
	case d.events <- struct{}{}:
	default: // a wake-up is already pending; the loop reads full state
	}
}

// record copies a member's state. Members of other clusters (which the
// Label normally keeps out) and members without readable meta are ignored.
func (d *gossipDelegate) record(n *memberlist.Node, gone bool) {
	md, err := decodeMeta(n.Meta)
	m := Member{
		Name:       n.Name,
		GossipAddr: n.Address(),
		Status:     StatusAlive,
	}
	if gone {
		// memberlist does not update the Node's own State field before
		// NotifyLeave, so whether the member left or died comes from its
		// last meta (a graceful Shutdown announces Leaving first) or, on
		// the leader, from the member's own request to leave Raft: the
		// meta update travels by gossip and can arrive after the leave
		// notice, or not at all.
		m.Status = StatusFailed
		if (err == nil && md.Leaving) || d.leftByRequest(n.Name) {
			m.Status = StatusLeft
		}
	}
	if err == nil {
		m.cluster = md.Cluster
		m.RaftAddr = md.RaftAddr
		m.InCluster = md.InCluster
		m.Leaving = md.Leaving
		m.expect = md.Expect
		m.id = md.ID
		m.boot = md.Boot
		m.Tags = md.Tags
		m.protocol = md.Protocol
	}
	d.mu.Lock()
	if d.members == nil {
		d.members = make(map[string]Member)
	}
	m.Since = time.Now()
	m.updated = m.Since
	if old, ok := d.members[n.Name]; ok && old.Status == m.Status {
		m.Since = old.Since
	}
	d.members[n.Name] = m
	d.mu.Unlock()
	d.wake()
	if m.Status == StatusFailed {
		select {
		case d.lost <- struct{}{}:
		default: // a signal is already pending
		}
	}
}

// forget drops the members other than self that have been failed or left
// since before cutoff, as Serf reaps them after its ReconnectTimeout, and
// returns their names. memberlist itself forgets a dead member after
// GossipToTheDeadTime; this copy is what the reconnect loop retries.
func (d *gossipDelegate) forget(cutoff time.Time) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var gone []string
	for name, m := range d.members {
		if name != d.self && (m.Status == StatusFailed || m.Status == StatusLeft) && m.Since.Before(cutoff) {
			delete(d.members, name)
			gone = append(gone, name)
		}
	}
	return gone
}

// leftByRequest reports whether name asked this node, as leader, to remove
// it from Raft and has not been heard from as alive and not leaving since:
// a member heard from afterwards is a new process under the same name (a
// rolling restart), whose failure is a failure.
func (d *gossipDelegate) leftByRequest(name string) bool {
	if d.askedToLeave == nil {
		return false
	}
	t := d.askedToLeave(name)
	if t.IsZero() {
		return false
	}
	d.mu.Lock()
	old, ok := d.members[name]
	d.mu.Unlock()
	return !ok || old.Leaving || old.Status != StatusAlive || !old.updated.After(t)
}

func (d *gossipDelegate) NotifyJoin(n *memberlist.Node)   { d.record(n, false) }
func (d *gossipDelegate) NotifyLeave(n *memberlist.Node)  { d.record(n, true) }
func (d *gossipDelegate) NotifyUpdate(n *memberlist.Node) { d.record(n, false) }

// nameConflict is another gossip address seen using this node's name.
type nameConflict struct {
	addr string // the other claimant's gossip address
}

// NotifyConflict records that another address claims this node's name.
// Conflicts between two other members are theirs to resolve; they are only
// logged.
func (d *gossipDelegate) NotifyConflict(existing, other *memberlist.Node) {
	if existing.Name != d.self {
		d.logger.Warn("two members claim one name", "member", existing.Name, "addrs", []string{existing.Address(), other.Address()})
		return
	}
	theirs := other.Address()
	if mine := d.selfAddr.Load(); mine != nil && theirs == *mine {
		theirs = existing.Address()
	}
	d.conflict.Store(&nameConflict{addr: theirs})
	d.wake()
}

// newMemberlist starts gossip. closed is set by the node just before it
// shuts memberlist down; see memberlistLog.
func newMemberlist(cfg Config, d *gossipDelegate, logger hclog.Logger, closed *atomic.Bool, stopped context.Context) (*memberlist.Memberlist, error) {
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeName
	host, port, _ := splitHostPort(cfg.BindAddr)
	if host == "" {
		host = "0.0.0.0"
	}
	mc.BindAddr = host
	mc.BindPort = port
	if cfg.AdvertiseAddr != "" {
		ah, ap, _ := splitHostPort(cfg.AdvertiseAddr)
		mc.AdvertiseAddr = ah
		mc.AdvertisePort = ap
	} else if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		mc.AdvertiseAddr = host
		mc.AdvertisePort = port
	}
	mc.Label = cfg.ClusterName
	mc.SecretKey = cfg.SecretKey
	mc.Delegate = d
	mc.Events = d
	mc.Conflict = d
	// A replica that comes back under the same name at a new address (a
	// rescheduled container) may reclaim its name once the old one is dead.
	mc.DeadNodeReclaimTime = time.Second
	mc.Logger = newMemberlistLogger(logger, closed)
	mc.LogOutput = nil
	gn, err := newGossipNet(mc, mc.Logger, stopped)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", cfg.BindAddr, err)
	}
	if cfg.tuneGossip != nil {
		cfg.tuneGossip(mc)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		gn.Shutdown()
		return nil, fmt.Errorf("start gossip on %s: %w", cfg.BindAddr, err)
	}
	d.keyring = mc.Keyring // built by Create from SecretKey
	return ml, nil
}

// members returns every member of this cluster that gossip knows of,
// including this node, sorted by name.
func (n *Node) members() []Member {
	d := n.gossip
	d.mu.Lock()
	out := make([]Member, 0, len(d.members))
	for _, m := range d.members {
		if m.cluster == n.cfg.ClusterName {
			out = append(out, m)
		}
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Members returns the cluster's members as this node's gossip sees them.
func (n *Node) Members() []Member { return n.members() }

// refreshAlive recomputes the set of live member names that the scheduler
// hashes over: members gossip shows alive and not leaving, less those in
// excluded (suspects.go). Only the maintenance loop calls it, and Start
// before the loop runs.
func (n *Node) refreshAlive(excluded map[string]struct{}) {
	set := make(map[string]struct{})
	for _, m := range n.members() {
		if _, out := excluded[m.Name]; out {
			continue
		}
		if m.Status == StatusAlive && !m.Leaving {
			set[m.Name] = struct{}{}
		}
	}
	n.alive.Store(&set)
}
