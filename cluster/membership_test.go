package cluster_test

import (
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
)

func voterCount(t *testing.T, n *cluster.Node) (voters, total int) {
	t.Helper()
	servers, err := n.Servers()
	if err != nil {
		return 0, 0
	}
	for _, s := range servers {
		if s.Voter {
			voters++
		}
	}
	return voters, len(servers)
}

func TestDeadVoterIsReplacedByNonVoter(t *testing.T) {
	const deadAfter = time.Second
	c := clustertest.MakeCluster(t, 4, clustertest.Options{Configure: func(i int, cfg *cluster.Config) {
		cfg.MaxVoters = 3
		cfg.DeadServerTimeout = deadAfter
	}})
	leader := c.Leader(10 * time.Second)
	clustertest.Eventually(t, 10*time.Second, func() bool {
		v, total := voterCount(t, c.Nodes[leader])
		return v == 3 && total == 4
	}, "want 3 voters and 1 non-voter")

	// Kill a voter that is not the leader.
	servers, _ := c.Nodes[leader].Servers()
	victim := -1
	for i, n := range c.Nodes {
		for _, s := range servers {
			if s.Name == n.Name() && s.Voter && i != leader {
				victim = i
			}
		}
	}
	if victim < 0 {
		t.Fatal("no follower voter to kill")
	}
	name := c.Nodes[victim].Name()
	killedAt := time.Now()
	if err := clustertest.Kill(c.Nodes[victim]); err != nil {
		t.Fatal(err)
	}
	c.Nodes[victim] = nil

	clustertest.Eventually(t, 30*time.Second, func() bool {
		l := c.Leader(10 * time.Second)
		v, total := voterCount(t, c.Nodes[l])
		return v == 3 && total == 3
	}, "dead voter %s never replaced by the non-voter", name)
	if took := time.Since(killedAt); took < deadAfter {
		t.Fatalf("dead server removed after %s, before DeadServerTimeout %s", took, deadAfter)
	}
	for _, s := range mustServers(t, c.Nodes[c.Leader(10*time.Second)]) {
		if s.Name == name {
			t.Fatalf("dead server %s still configured", name)
		}
	}
}

func TestDeadServerCleanupKeepsQuorum(t *testing.T) {
	// Five voters; kill three at once. Only (5-1)/2 = 2 may ever be removed
	// by cleanup, and the two survivors cannot commit anyway, so the
	// configuration must keep at least 3 voters.
	c := clustertest.MakeCluster(t, 5, clustertest.Options{Configure: func(i int, cfg *cluster.Config) {
		cfg.DeadServerTimeout = 500 * time.Millisecond
	}})
	leader := c.Leader(10 * time.Second)
	killed := 0
	for i := range c.Nodes {
		if i != leader && killed < 3 {
			if err := clustertest.Kill(c.Nodes[i]); err != nil {
				t.Fatal(err)
			}
			c.Nodes[i] = nil
			killed++
		}
	}
	// Wait until gossip on the survivors has declared killed nodes failed
	// for well over DeadServerTimeout, so cleanup had several chances to
	// run. With only two survivors to confirm suspicions, memberlist can
	// take from 15 s to over 35 s to mark all three, so one is enough.
	clustertest.Eventually(t, 60*time.Second, func() bool {
		for _, m := range c.Nodes[leader].Members() {
			if m.Status == cluster.StatusFailed && time.Since(m.Since) > 3*time.Second {
				return true
			}
		}
		return false
	}, "gossip never marked the killed nodes failed")
	for _, n := range c.Running() {
		if v, _ := voterCount(t, n); v != 0 && v < 3 {
			t.Fatalf("%s sees %d voters: cleanup removed more than (voters-1)/2", n.Name(), v)
		}
	}
}

func mustServers(t *testing.T, n *cluster.Node) []cluster.Server {
	t.Helper()
	s, err := n.Servers()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
