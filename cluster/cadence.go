package cluster

import (
	"time"

	"github.com/hashicorp/raft"
)

// Raft's cadence on an idle cluster. Most of an idle node's CPU is Raft
// RPCs on loopback or a LAN, each costing both ends a few system calls and
// thread wake-ups, so their count is what these settings are about. Three
// kinds are sent with nothing to replicate:
//
//   - heartbeats, from the leader to each follower every HeartbeatTimeout/10
//     to /5, a ratio hashicorp/raft fixes;
//   - the replication loop's AppendEntries to each follower every
//     CommitTimeout to 2×CommitTimeout, which is how a follower learns of a
//     commit when no later write carries it;
//   - autopilot's stats fetch, every ReconcileInterval.
//
// A follower's HeartbeatTimeout alone decides how soon it notices a dead
// leader, and the leader's own HeartbeatTimeout alone decides how often it
// sends heartbeats, because each node reads its own configuration. So the
// leader runs with a longer one (leaderHeartbeatTimeout) than its
// followers, and failover, which the followers' timeout sets, is unchanged.
// Measured with three idle nodes and 100 jobs at a 1 h interval (20 s of
// /proc CPU time per process): heartbeats at the followers' cadence and a
// 50 ms CommitTimeout cost the leader about 2.5% of a core and each
// follower about 1%; with both changes below, about 1.8% and 0.7%.

// commitTimeout replaces hashicorp/raft's 50 ms CommitTimeout. A follower
// applies a commit that no later write carries up to 2×commitTimeout late,
// which is below the 500 ms default FallbackDelay of jobs of 2 s and more:
// the fallback replicas of a tick still see its grant before they would
// claim it. For 1 s jobs (FallbackDelay 250 ms) the next claims or run
// reports carry the commit; 100 jobs at 1 s committed as many entries per
// second with 50 ms as with 500 ms.
const commitTimeout = 250 * time.Millisecond

// leaderHeartbeatTimeout returns the HeartbeatTimeout the leader runs with:
// twice the followers', so it sends half as many heartbeats, but never so
// long that its heartbeats come more than LeaderLeaseTimeout/2 apart.
// hashicorp/raft's leader steps down when it has not heard from a quorum
// for LeaderLeaseTimeout, and a heartbeat is what it hears back; half the
// lease leaves room for a slow round trip or a busy scheduler (with the
// defaults, heartbeats 80–160 ms apart against a 400 ms lease: the same
// 2.5× margin as raft's own 1 s/500 ms defaults).
func leaderHeartbeatTimeout(c Config) time.Duration {
	// Heartbeats are at most HeartbeatTimeout/5 apart.
	byLease := 5 * c.LeaderLeaseTimeout / 2
	return max(c.HeartbeatTimeout, min(2*c.HeartbeatTimeout, byLease))
}

// matchCadence sets Raft's reloadable timing to this node's role: the
// leader's longer HeartbeatTimeout (and an ElectionTimeout at least as
// long, which raft requires) while it leads, the configured ones
// otherwise. The maintain loop calls it on every pass and on every
// leadership observation, so a node that loses leadership gets the
// followers' timing back within one pass; until then only its own
// election after a leader loss could start later. Only the maintain
// goroutine calls it; it holds reloadMu, which nudgeContactCheck
// (contactcheck.go) takes too.
func (n *Node) matchCadence() {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	hb, et := n.cfg.HeartbeatTimeout, n.cfg.ElectionTimeout
	if n.raft.State() == raft.Leader {
		hb = leaderHeartbeatTimeout(n.cfg)
		et = max(et, hb)
	}
	rc := n.raft.ReloadableConfig()
	if rc.HeartbeatTimeout == hb && rc.ElectionTimeout == et {
		return
	}
	rc.HeartbeatTimeout, rc.ElectionTimeout = hb, et
	if err := n.raft.ReloadConfig(rc); err != nil {
		// Validate has checked these timings against raft's rules, so
		// this is not expected; the node keeps working at the old ones.
		n.logger.Warn("could not change Raft's heartbeat timing", "heartbeat_timeout", hb, "election_timeout", et, "error", err)
	}
}
