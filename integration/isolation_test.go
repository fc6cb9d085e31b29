package integration

import (
	"slices"
	"testing"
	"time"
)

// TestClustersWithCrossedJoinsStayApart runs two 3-node clusters on one
// host with different -cluster-name values, every node's -join listing the
// members of both. Each cluster keeps exactly its own servers and gossip
// members throughout, and each runs its own copy of the same job: the two
// Raft groups grant the same ticks independently.
func TestClustersWithCrossedJoinsStayApart(t *testing.T) {
	alpha := newCluster(t, 3, clusterOpts{Prefix: "a", ClusterName: "alpha", Jobs: "a:200ms"})
	beta := newCluster(t, 3, clusterOpts{Prefix: "b", ClusterName: "beta", Jobs: "a:200ms"})
	// Cross the join lists: put the other cluster's members first, so each
	// node tries them before its own.
	alpha.opts.ExtraJoin = beta.GossipAddrs()
	beta.opts.ExtraJoin = alpha.GossipAddrs()
	for i := range 3 {
		alpha.Launch(i)
		beta.Launch(i)
	}
	for i := range 3 {
		alpha.WaitReady(i)
		beta.WaitReady(i)
	}
	alpha.WaitLeader(30 * time.Second)
	beta.WaitLeader(30 * time.Second)

	// Check every node's view until both clusters have run 15 ticks each.
	check := func(c *Cluster) {
		t.Helper()
		want := c.Names()
		for i := range 3 {
			st := c.MustStatus(i)
			if got := st.ServerNames(); !slices.Equal(got, want) {
				t.Fatalf("%s's Raft configuration is %v, want exactly %v", st.Name, got, want)
			}
			if got := st.MemberNames(); !slices.Equal(got, want) {
				t.Fatalf("%s's gossip members are %v, want exactly %v", st.Name, got, want)
			}
			for _, m := range st.Members {
				if m.Status != "alive" {
					t.Fatalf("%s sees %s as %s", st.Name, m.Name, m.Status)
				}
			}
		}
	}
	checks := 0
	var aRuns, bRuns []Run
	eventually(t, 30*time.Second, func() bool {
		check(alpha)
		check(beta)
		checks++
		aRuns, bRuns = alpha.ReadRuns(), beta.ReadRuns()
		return len(aRuns) >= 15 && len(bRuns) >= 15
	}, "both clusters did not run 15 ticks")
	t.Logf("checked both clusters' views %d times; alpha runs %v, beta runs %v", checks, perNode(aRuns), perNode(bRuns))

	checkRuns(t, aRuns)
	checkRuns(t, bRuns)
	// Separate Raft groups grant the same ticks independently: some tick
	// ran once in each cluster. Had they merged, no tick could run twice.
	aTicks := map[int64]bool{}
	for _, r := range aRuns {
		aTicks[r.Tick] = true
	}
	both := 0
	for _, r := range bRuns {
		if aTicks[r.Tick] {
			both++
		}
	}
	if both == 0 {
		t.Errorf("no tick ran in both clusters; alpha %v, beta %v", aRuns, bRuns)
	}
	t.Logf("%d ticks ran once in each cluster", both)
}
