package cluster_test

import (
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
)

// TestFollowerNoticesSilentLeader kills the leader of four nodes and checks
// when each follower started to run for leader, against its own last
// contact with the dead leader: never before a full HeartbeatTimeout of
// silence, and within the contact check's deadline (1.5×HeartbeatTimeout)
// plus a margin for scheduling. Of four nodes, every one of the three
// followers must become a candidate before one can win (each refuses its
// vote while it still knows a leader), so all three are measured.
//
// raft's own timer alone notices the silence anywhere up to three
// HeartbeatTimeouts after the last contact; at this HeartbeatTimeout each
// follower would then miss the bound about half of the time, and one of
// the three or more nine times in ten. So this fails if the contact check
// stops making raft look, for example after a raft upgrade changes what
// ReloadConfig does (contactcheck.go).
func TestFollowerNoticesSilentLeader(t *testing.T) {
	const (
		hb     = 1500 * time.Millisecond
		margin = 300 * time.Millisecond
	)
	c := clustertest.MakeCluster(t, 4, clustertest.Options{Configure: func(_ int, cfg *cluster.Config) {
		cfg.HeartbeatTimeout, cfg.ElectionTimeout = hb, hb
	}})
	li := c.Leader(30 * time.Second)
	clustertest.Eventually(t, 30*time.Second, func() bool {
		for i, n := range c.Nodes {
			if i != li && time.Since(cluster.RaftLastContact(n)) > hb/2 {
				return false
			}
		}
		return true
	}, "every follower to hear from the leader")

	type left struct {
		at, last time.Time
		state    raft.RaftState
	}
	var mu sync.Mutex
	lefts := make(map[int]left)
	for i, n := range c.Nodes {
		if i == li {
			continue
		}
		stop := cluster.OnRaftState(n, func(s raft.RaftState) {
			if s == raft.Follower {
				return
			}
			at, last := time.Now(), cluster.RaftLastContact(n)
			mu.Lock()
			defer mu.Unlock()
			if _, ok := lefts[i]; !ok {
				lefts[i] = left{at: at, last: last, state: s}
			}
		})
		defer stop()
	}
	if err := clustertest.Kill(c.Nodes[li]); err != nil {
		t.Fatalf("kill leader: %v", err)
	}
	clustertest.Eventually(t, 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(lefts) == len(c.Nodes)-1
	}, "every follower to run for leader")

	mu.Lock()
	defer mu.Unlock()
	for i, l := range lefts {
		silent := l.at.Sub(l.last)
		t.Logf("node%d became %v %v after its last contact", i, l.state, silent.Round(time.Millisecond))
		if silent < hb {
			t.Errorf("node%d ran for leader after %v of silence, before a HeartbeatTimeout (%v)", i, silent, hb)
		}
		if limit := hb + hb/2 + margin; silent > limit {
			t.Errorf("node%d ran for leader %v after its last contact, later than %v (HeartbeatTimeout %v): the contact check did not make raft look",
				i, silent, limit, hb)
		}
	}
}
