package cluster_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/fsm"
)

// TestForgetfulMemoryOnlyNodeCannotElect builds the election a memory-only
// voter could swing. Of three nodes, node1 keeps its log in DataDir and
// node0 and node2 in memory. node1 is killed; a grant is committed by
// node0 and node2 alone, so node1's log lacks it. Then node0 and node2 are
// killed, and node1 and node2 are started again: node1 from its DataDir,
// node2 under the same name and ports with an empty log. The grant now
// exists nowhere but in what node2 acknowledged before it forgot it.
//
// node2 must not vote for node1: with its vote node1 would lead without
// the committed grant and grant the same tick again. On 67e823c node2 came
// back as the same Raft voter and hashicorp/raft grants votes from an
// empty configuration, so node1 was elected. Now node2 comes back under a
// new identity that no configuration lists, and refuses votes until a
// leader adds it, so no leader can be elected without node0.
func TestForgetfulMemoryOnlyNodeCannotElect(t *testing.T) {
	const durable = 1
	c := clustertest.MakeCluster(t, 3, clustertest.Options{Configure: func(i int, cfg *cluster.Config) {
		if i == durable {
			cfg.DataDir = t.TempDir()
		}
	}})
	c.Leader(10 * time.Second)
	if err := clustertest.Kill(c.Nodes[durable]); err != nil {
		t.Fatal(err)
	}
	c.Nodes[durable] = nil
	l := c.Leader(15 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cluster.Plumbing(c.Nodes[l]).Claim(ctx, []fsm.Claim{claimNow("once", 1)}, true)
	if err != nil || !res.Outcomes[0].Granted() {
		t.Fatalf("claim with node1 down: %v %+v", err, res)
	}
	for _, i := range []int{0, 2} {
		if err := clustertest.Kill(c.Nodes[i]); err != nil {
			t.Fatal(err)
		}
		c.Nodes[i] = nil
	}

	// Both restarts wait for a leader; give them long enough for several
	// election rounds.
	sctx, scancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer scancel()
	var wg sync.WaitGroup
	for _, i := range []int{durable, 2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := cluster.Start(sctx, c.Configs[i])
			if err != nil {
				t.Logf("node%d did not start (expected: no quorum of nodes that remember): %v", i, err)
				return
			}
			c.Nodes[i] = n
		}()
	}
	wg.Wait()
	for _, i := range []int{durable, 2} {
		n := c.Nodes[i]
		if n == nil {
			continue
		}
		st, ok := cluster.Plumbing(n).LastGrant("once")
		if !ok || st.Token != res.Index {
			t.Errorf("%s started under leader %s without the committed grant (token %d; it has %+v, %v): the restarted memory-only node voted with an empty log",
				n.Name(), n.Leader(), res.Index, st, ok)
		}
	}
}

// TestMemoryOnlyRestartRejoinsUnderNewIdentity restarts a memory-only
// follower under the same name and ports: it must be ready again, listed
// once under its name at its address as a voter, and the cluster commits.
func TestMemoryOnlyRestartRejoinsUnderNewIdentity(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	leader := c.Leader(10 * time.Second)
	victim := (leader + 1) % 3
	name := c.Nodes[victim].Name()
	if err := clustertest.Kill(c.Nodes[victim]); err != nil {
		t.Fatal(err)
	}
	c.Nodes[victim] = nil
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := cluster.Start(ctx, c.Configs[victim])
	if err != nil {
		t.Fatalf("restart %s: %v", name, err)
	}
	c.Nodes[victim] = n
	clustertest.Eventually(t, 30*time.Second, func() bool {
		servers, err := c.Nodes[c.Leader(10*time.Second)].Servers()
		if err != nil || len(servers) != 3 {
			return false
		}
		for _, s := range servers {
			if s.Name == name {
				return s.Voter && s.Address == n.RaftAddr()
			}
		}
		return false
	}, "%s never listed once as a voter again", name)
	if r, err := cluster.Plumbing(n).Claim(ctx, []fsm.Claim{claimNow("after-restart", 1)}, true); err != nil || !r.Outcomes[0].Granted() {
		t.Fatalf("claim through the restarted node: %v %+v", err, r)
	}
}
