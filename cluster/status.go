package cluster

import (
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"
)

// Status is one node's view of itself and of the cluster, for status pages
// and the HTTP API: see Node.Status.
type Status struct {
	// Node is this node's NodeName, Cluster its ClusterName.
	Node    string
	Cluster string
	// Leader is the leader's name as this node knows it; "" if none.
	Leader string
	// Role is this node's Raft state: "leader", "follower", "candidate"
	// or "shutdown".
	Role string
	// Term is this node's current Raft term; CommitIndex, AppliedIndex
	// and LastIndex are its Raft commit, apply and last log indexes.
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LastIndex    uint64
	// Members lists every node that gossip knows or that is in the Raft
	// configuration, sorted by name.
	Members []MemberView
}

// MemberView is one node in a Status: what gossip and the Raft
// configuration say of it and, on the leader, autopilot's judgement of
// its health.
type MemberView struct {
	Name       string
	GossipAddr string
	RaftAddr   string
	// InGossip is whether this node's gossip knows the member; Gossip is
	// its gossip state then.
	InGossip bool
	Gossip   MemberStatus
	// Role is "leader", "voter" or "nonvoter" for a server of the Raft
	// configuration, and "none" for a node outside it.
	Role string
	// Tags are the member's Config.Tags as it advertises them.
	Tags map[string]string
	// Health is the leader's judgement of the server, nil unless this
	// node leads and its autopilot has judged the server.
	Health *ServerHealth
}

// ServerHealth is the leader autopilot's view of one Raft server, from
// its latest pass (every ReconcileInterval).
type ServerHealth struct {
	// Healthy is whether the server is in recent contact with the leader,
	// on the leader's term and not too far behind its log.
	Healthy bool
	// LastContact is how long before that pass the server last heard
	// from the leader, as the server reported it; 0 for the leader
	// itself and negative when the server did not answer.
	LastContact time.Duration
	// StableSince is when Healthy last changed.
	StableSince time.Time
}

// pilotView holds the latest state the leader's autopilot computed, for
// Status. autopilot replaces, never mutates, a State it has handed over.
type pilotView struct {
	state atomic.Pointer[autopilot.State]
}

// Status returns this node's view of itself and the cluster. It reads
// local state only, so it answers even without a quorum. Safe for
// concurrent use.
func (n *Node) Status() Status {
	st := Status{
		Node:         n.cfg.NodeName,
		Cluster:      n.cfg.ClusterName,
		Leader:       n.Leader(),
		Role:         strings.ToLower(n.raft.State().String()),
		Term:         n.raft.CurrentTerm(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.fsm.AppliedIndex(),
		LastIndex:    n.raft.LastIndex(),
	}
	byName := make(map[string]*MemberView)
	byID := make(map[raft.ServerID]*MemberView)
	for _, m := range n.members() {
		v := &MemberView{Name: m.Name, GossipAddr: m.GossipAddr, RaftAddr: m.RaftAddr, InGossip: true, Gossip: m.Status, Role: "none", Tags: m.Tags}
		byName[m.Name] = v
		byID[m.raftID()] = v
	}
	var health map[raft.ServerID]*autopilot.ServerState
	if s := n.health.state.Load(); s != nil && s.Leader == n.raftID && n.IsLeader() {
		health = s.Servers
	}
	_, leaderID := n.raft.LeaderWithID()
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			v := byID[s.ID]
			if v == nil {
				name := nameOf(s.ID)
				if v = byName[name]; v == nil || v.Role != "none" {
					v = &MemberView{Name: name}
					byName[string(s.ID)] = v
				}
			}
			if v.RaftAddr == "" {
				v.RaftAddr = string(s.Address)
			}
			switch {
			case s.ID == leaderID:
				v.Role = "leader"
			case s.Suffrage == raft.Voter:
				v.Role = "voter"
			default:
				v.Role = "nonvoter"
			}
			if ss, ok := health[s.ID]; ok {
				v.Health = &ServerHealth{Healthy: ss.Health.Healthy, LastContact: ss.Stats.LastContact, StableSince: ss.Health.StableSince}
			}
		}
	}
	for _, v := range byName {
		st.Members = append(st.Members, *v)
	}
	slices.SortFunc(st.Members, func(a, b MemberView) int { return strings.Compare(a.Name, b.Name) })
	return st
}

// LockInfo is one lock of the replicated lock table, for status pages:
// see Node.Locks.
type LockInfo struct {
	Name string
	// Node is the holding node's name and Owner its lease's ID; both ""
	// while the lock is free with waiters queued (a hand-off is due).
	Node  string
	Owner string
	// Token is the holder's fencing token.
	Token uint64
	// Expires is when the lease ends by the leader's clock; zero if free.
	Expires time.Time
	// Waiters are the names of the nodes queued for the lock, in order.
	Waiters []string
}

// Locks returns every lock that is held or awaited, sorted by name, from
// this node's copy of the replicated state (which may lag the leader's by
// a few milliseconds). Safe for concurrent use.
func (n *Node) Locks() []LockInfo {
	list := n.fsm.Locks()
	out := make([]LockInfo, 0, len(list))
	for _, l := range list {
		li := LockInfo{Name: l.Name, Node: l.Node, Owner: l.Owner, Token: l.Token}
		if l.Owner != "" && l.Expires != 0 {
			li.Expires = time.Unix(0, l.Expires)
		}
		for _, w := range l.Waiters {
			li.Waiters = append(li.Waiters, w.Node)
		}
		out = append(out, li)
	}
	return out
}
