package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
)

// TestLeaderRunsAtItsOwnHeartbeatCadence checks cadence.go on a running
// cluster: the leader sends heartbeats at twice the followers'
// HeartbeatTimeout, each follower keeps the configured one (which sets how
// soon it notices a dead leader), and both follow a change of leader.
func TestLeaderRunsAtItsOwnHeartbeatCadence(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	check := func(leader int) {
		t.Helper()
		for i, n := range c.Nodes {
			want := cluster.DefaultHeartbeatTimeout
			if i == leader {
				want = 2 * cluster.DefaultHeartbeatTimeout
			}
			clustertest.Eventually(t, 5*time.Second, func() bool {
				return cluster.RaftHeartbeatTimeout(n) == want
			}, "%s (leader: %v) never ran Raft with HeartbeatTimeout %s", n.Name(), i == leader, want)
		}
	}
	old := c.Leader(10 * time.Second)
	check(old)
	next := (old + 1) % len(c.Nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Nodes[old].TransferLeadership(ctx, c.Nodes[next].Name()); err != nil {
		t.Fatalf("TransferLeadership: %v", err)
	}
	clustertest.Eventually(t, 10*time.Second, func() bool { return c.Nodes[next].IsLeader() }, "%s never became leader", c.Nodes[next].Name())
	check(next)
}
