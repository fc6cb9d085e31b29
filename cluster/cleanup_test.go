package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/fsm"
)

// TestCleanupJudgesHealthByRaftNotGossipAlone kills three of five voters
// (the first until gossip calls it failed, then two more) and brings the
// first back on its DataDir and Raft port, but in a gossip pool of its own
// (another ClusterName), so to the survivors' gossip it stays failed for
// good while Raft is in full contact with it: it votes, and with it three
// of five voters are up.
//
// The leader must remove the two voters that are really gone (gossip
// failed and unreachable by Raft for DeadServerTimeout) and never the one
// Raft reaches, ending with three voters that all answer. Judged from
// gossip alone, the live voter looks as dead as the others: on 67e823c the
// cleanup either removed it (wedging the cluster) or, since its last
// change, refused to remove anyone, leaving five voters of which two are
// dead and no failure tolerance.
func TestCleanupJudgesHealthByRaftNotGossipAlone(t *testing.T) {
	const deadAfter = 10 * time.Second
	c := clustertest.MakeCluster(t, 5, clustertest.Options{DataDir: true, Configure: func(i int, cfg *cluster.Config) {
		cfg.DeadServerTimeout = deadAfter
	}})
	leader := c.Leader(10 * time.Second)
	var others []int
	for i := range c.Nodes {
		if i != leader {
			others = append(others, i)
		}
	}
	back, dead, survivor := others[0], others[1:3], others[3]
	backName := c.Nodes[back].Name()
	// First back alone, until the gossip of the two that survive calls it
	// failed, then the two others at once, well within DeadServerTimeout:
	// from then on there is no quorum, so nothing can be removed before
	// back returns.
	if err := clustertest.Kill(c.Nodes[back]); err != nil {
		t.Fatal(err)
	}
	c.Nodes[back] = nil
	clustertest.Eventually(t, 60*time.Second, func() bool {
		return memberFailed(c.Nodes[leader], backName) && memberFailed(c.Nodes[survivor], backName)
	}, "gossip never marked %s failed", backName)
	for _, i := range dead {
		if err := clustertest.Kill(c.Nodes[i]); err != nil {
			t.Fatal(err)
		}
		c.Nodes[i] = nil
	}

	for _, i := range []int{leader, survivor} {
		if !slices.ContainsFunc(mustServers(t, c.Nodes[i]), func(s cluster.Server) bool { return s.Name == backName && s.Voter }) {
			t.Fatalf("setup: %s removed %s before it came back", c.Nodes[i].Name(), backName)
		}
	}
	restartAt := time.Now()
	cfg := c.Configs[back]
	cfg.ClusterName = "elsewhere"
	cfg.Join = nil
	cfg.BootstrapExpect = 1 // never used: its DataDir holds a configuration
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := cluster.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("restart %s outside the survivors' gossip: %v", cfg.NodeName, err)
	}
	c.Nodes[back] = n

	want := []string{c.Nodes[leader].Name(), c.Nodes[survivor].Name(), backName}
	slices.Sort(want)
	live := []int{leader, survivor, back}
	var last string
	deadline := time.Now().Add(120 * time.Second)
	for {
		done := true
		var views []string
		for _, i := range live {
			servers, err := c.Nodes[i].Servers()
			if err != nil {
				t.Fatal(err)
			}
			var voters []string
			for _, s := range servers {
				if s.Voter {
					voters = append(voters, s.Name)
				}
			}
			slices.Sort(voters)
			if len(servers) > 0 && !slices.Contains(voters, backName) {
				t.Fatalf("%s after %s came back, %s's configuration %v dropped it, a voter Raft is in contact with",
					time.Since(restartAt).Round(time.Millisecond), backName, c.Nodes[i].Name(), servers)
			}
			if !slices.Equal(voters, want) || len(servers) != len(want) {
				done = false
			}
			views = append(views, fmt.Sprintf("%s: %v", c.Nodes[i].Name(), servers))
		}
		last = fmt.Sprint(views)
		if done {
			t.Logf("dead voters removed %s after %s came back: %s", time.Since(restartAt).Round(time.Millisecond), backName, last)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two dead voters were never removed; want voters %v everywhere, last view %s", want, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	l := c.Leader(10 * time.Second)
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	if r, err := cluster.Plumbing(c.Nodes[l]).Claim(cctx, []fsm.Claim{claimNow("after-cleanup", 1)}, true); err != nil || !r.Outcomes[0].Granted() {
		t.Fatalf("claim after the cleanup: %v %+v", err, r)
	}
}

// memberFailed reports whether n's gossip has the member called name failed.
func memberFailed(n *cluster.Node, name string) bool {
	for _, m := range n.Members() {
		if m.Name == name {
			return m.Status == cluster.StatusFailed
		}
	}
	return false
}
