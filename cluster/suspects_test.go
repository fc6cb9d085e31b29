package cluster_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
)

// TestCrashedLeaderLeavesRankingAtTheElection checks the rule of
// docs/failure-modes.md, "After an election": a leader that crashed stops
// ranking for ticks as soon as the survivors agree on its successor, not
// seconds later when gossip declares it dead. Until then the survivors
// claimed its share of the ticks only at their fallback moments, late.
func TestCrashedLeaderLeavesRankingAtTheElection(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	leader := c.Leader(10 * time.Second)
	const job = "ranked"
	for _, n := range c.Nodes {
		if err := cluster.Plumbing(n).Register(context.Background(), []string{job}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.Nodes {
		clustertest.Eventually(t, 10*time.Second, func() bool {
			return len(clustertest.Candidates(n, job)) == 3
		}, "%s never saw all three nodes registered", n.Name())
	}

	dead := c.Nodes[leader].Name()
	killedAt := time.Now()
	if err := clustertest.Kill(c.Nodes[leader]); err != nil {
		t.Fatal(err)
	}
	c.Nodes[leader] = nil
	t.Logf("killed %s in %s", dead, time.Since(killedAt).Round(time.Millisecond))
	for _, n := range c.Running() {
		var gossip cluster.MemberStatus
		clustertest.Eventually(t, 15*time.Second, func() bool {
			if slices.Contains(clustertest.Candidates(n, job), dead) {
				return false
			}
			for _, m := range n.Members() {
				if m.Name == dead {
					gossip = m.Status
				}
			}
			return true
		}, "%s still ranks the dead leader %s", n.Name(), dead)
		t.Logf("%s: %s out of the ranking %s after the kill; gossip says %s", n.Name(), dead, time.Since(killedAt).Round(time.Millisecond), gossip)
		if gossip != cluster.StatusAlive {
			t.Errorf("%s dropped %s from the ranking only once gossip said %s; the election should have dropped it earlier", n.Name(), dead, gossip)
		}
	}
}
