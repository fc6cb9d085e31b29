package cluster

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/interlockraft/interlock/internal/gometricsbridge"
)

// Prometheus metrics of a Node (docs/operations.md lists them). Gauges are
// read from Raft, gossip and the lock table when the registry is scraped,
// so the hot paths pay nothing for them; the counters and histograms that
// need an event are updated by the nil-safe methods in metrics_events.go,
// which cost nothing either when Config.Registerer is nil.

var (
	descRaftState = prometheus.NewDesc("interlock_raft_state",
		"1 for this node's current Raft state (leader, follower, candidate, shutdown), 0 for the others.",
		[]string{"state"}, nil)
	descRaftTerm = prometheus.NewDesc("interlock_raft_term",
		"This node's current Raft term.", nil, nil)
	descCommitIndex = prometheus.NewDesc("interlock_raft_commit_index",
		"The highest Raft log index this node knows to be committed.", nil, nil)
	descAppliedIndex = prometheus.NewDesc("interlock_raft_applied_index",
		"The highest Raft log index this node applied to its state machine.", nil, nil)
	descLastIndex = prometheus.NewDesc("interlock_raft_last_index",
		"The last index in this node's Raft log or snapshot.", nil, nil)
	descSnapshotIndex = prometheus.NewDesc("interlock_raft_last_snapshot_index",
		"The Raft index of this node's latest snapshot; 0 before the first.", nil, nil)
	descLastContact = prometheus.NewDesc("interlock_raft_last_contact_seconds",
		"Seconds since this follower last heard from the leader; 0 on the leader, -1 before any contact.", nil, nil)
	descServers = prometheus.NewDesc("interlock_raft_servers",
		"Servers in the Raft configuration as this node sees it, by suffrage (voter, nonvoter).",
		[]string{"suffrage"}, nil)
	descMembers = prometheus.NewDesc("interlock_gossip_members",
		"Members of this cluster as this node's gossip sees them, itself included, by state (alive, suspect, failed, left).",
		[]string{"state"}, nil)
	descLocksHeld = prometheus.NewDesc("interlock_lock_held",
		"Lock leases this node holds now; the sum over nodes is the number of held locks.", nil, nil)
)

// raftStates are the values of interlock_raft_state's label, every one
// reported so that a query for state="leader" finds 0 as well as 1.
var raftStates = []raft.RaftState{raft.Leader, raft.Follower, raft.Candidate, raft.Shutdown}

// memberStates are the values of interlock_gossip_members' label.
var memberStates = []MemberStatus{StatusAlive, StatusSuspect, StatusFailed, StatusLeft}

// nodeCollector is the prometheus.Collector of one Node: the scrape-time
// gauges plus the node's event metrics.
type nodeCollector struct {
	n *Node
}

// Describe implements prometheus.Collector.
func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRaftState, descRaftTerm, descCommitIndex, descAppliedIndex,
		descLastIndex, descSnapshotIndex, descLastContact, descServers, descMembers, descLocksHeld} {
		ch <- d
	}
	c.n.metrics.describe(ch)
}

// Collect implements prometheus.Collector. It may run concurrently with
// everything else the node does, and after Shutdown.
func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	r := n.raft
	state := r.State()
	for _, s := range raftStates {
		gauge(descRaftState, boolValue(state == s), stateName(s))
	}
	gauge(descRaftTerm, float64(r.CurrentTerm()))
	gauge(descCommitIndex, float64(r.CommitIndex()))
	gauge(descAppliedIndex, float64(r.AppliedIndex()))
	gauge(descLastIndex, float64(r.LastIndex()))
	gauge(descSnapshotIndex, float64(parseStat(r.Stats()["last_snapshot_index"])))
	contact := -1.0
	if state == raft.Leader {
		contact = 0
	} else if t := r.LastContact(); !t.IsZero() {
		contact = time.Since(t).Seconds()
	}
	gauge(descLastContact, contact)
	voters, nonvoters := 0, 0
	if servers, err := n.Servers(); err == nil {
		for _, s := range servers {
			if s.Voter {
				voters++
			} else {
				nonvoters++
			}
		}
	}
	gauge(descServers, float64(voters), "voter")
	gauge(descServers, float64(nonvoters), "nonvoter")
	counts := make(map[MemberStatus]int, len(memberStates))
	for _, m := range n.members() {
		counts[m.Status]++
	}
	for _, s := range memberStates {
		gauge(descMembers, float64(counts[s]), s.String())
	}
	gauge(descLocksHeld, float64(n.locks.heldCount()))
	n.metrics.collect(ch)
}

// registerMetrics registers the node's collector and the bridge of Raft's
// and memberlist's go-metrics with Config.Registerer, if set, and starts
// counting leader changes. open calls it once Raft exists.
func (n *Node) registerMetrics() error {
	reg := n.cfg.Registerer
	if reg == nil {
		return nil
	}
	c := nodeCollector{n: n}
	if err := reg.Register(c); err != nil {
		return fmt.Errorf("%w: Registerer: register node %s's metrics: %v; give each node in a process its own registry, or wrap a shared one with prometheus.WrapRegistererWith(prometheus.Labels{\"node\": name}, reg)", ErrInvalidConfig, n.cfg.NodeName, err)
	}
	detach, err := gometricsbridge.Attach(reg)
	if err != nil {
		reg.Unregister(c)
		return fmt.Errorf("%w: Registerer: node %s: %v; give each node in a process its own registry, or wrap a shared one with prometheus.WrapRegistererWith", ErrInvalidConfig, n.cfg.NodeName, err)
	}
	n.metrics.unregister = func() {
		reg.Unregister(c)
		detach()
	}
	return nil
}

// unregisterMetrics undoes registerMetrics, so a node started again in the
// same process can register with the same registry. close calls it.
func (n *Node) unregisterMetrics() {
	if n.metrics != nil && n.metrics.unregister != nil {
		n.metrics.unregister()
	}
}

func stateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	default:
		return "shutdown"
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
