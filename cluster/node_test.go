package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/fsm"
)

func claimNow(job string, tick int64) fsm.Claim {
	now := time.Now().UnixNano()
	return fsm.Claim{Job: job, Tick: tick, At: now, Deadline: now + int64(time.Minute)}
}

func TestClaimsFromAnyNodeAreGrantedOnce(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	leader := c.Leader(10 * time.Second)
	follower := (leader + 1) % 3
	other := (leader + 2) % 3
	ctx := context.Background()

	res, err := cluster.Plumbing(c.Nodes[follower]).Claim(ctx, []fsm.Claim{claimNow("j", 1), claimNow("k", 1)}, true)
	if err != nil {
		t.Fatalf("claim through follower: %v", err)
	}
	for i, o := range res.Outcomes {
		if !o.Granted() || o.Token != res.Index || o.Holder != c.Nodes[follower].Name() {
			t.Fatalf("outcome %d = %+v, want a grant with token %d to %s", i, o, res.Index, c.Nodes[follower].Name())
		}
	}
	// The same tick is the same instant: the state machine keys grants by
	// At, not by the index.
	again := claimNow("j", 1)
	again.At, again.Deadline = res.Outcomes[0].At, res.Outcomes[0].At+int64(time.Minute)
	res2, err := cluster.Plumbing(c.Nodes[other]).Claim(ctx, []fsm.Claim{again}, true)
	if err != nil {
		t.Fatal(err)
	}
	if o := res2.Outcomes[0]; o.Granted() || o.Reason != fsm.ReasonTaken || o.Holder != c.Nodes[follower].Name() {
		t.Fatalf("second claim of the same tick = %+v, want taken by %s", o, c.Nodes[follower].Name())
	}
	// Every node's state machine converges on the grant.
	clustertest.Eventually(t, 5*time.Second, func() bool {
		for _, n := range c.Nodes {
			st, ok := cluster.Plumbing(n).LastGrant("j")
			if !ok || st.Token != res.Index {
				return false
			}
		}
		return true
	}, "grant did not reach every node")
}

func TestShutdownIsGracefulAndIdempotent(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	c.Leader(10 * time.Second)
	leaving := c.Nodes[0]
	if err := leaving.Shutdown(context.Background()); err != nil {
		t.Fatalf("first shutdown: %v", err)
	}
	if err := leaving.Shutdown(context.Background()); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
	c.Nodes[0] = nil
	// It left the Raft configuration, and the other two still have a leader.
	leader := c.Leader(10 * time.Second)
	servers, err := c.Nodes[leader].Servers()
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 2 {
		t.Fatalf("configuration after leave = %+v, want 2 servers", servers)
	}
	for _, s := range servers {
		if s.Name == leaving.Name() {
			t.Fatalf("%s still in the configuration after Shutdown", s.Name)
		}
	}
	// Gossip reports it as left, not failed.
	clustertest.Eventually(t, 5*time.Second, func() bool {
		for _, m := range c.Nodes[leader].Members() {
			if m.Name == leaving.Name() {
				return m.Status == cluster.StatusLeft
			}
		}
		return false
	}, "gossip never reported %s as left", leaving.Name())
}

func TestLeaderShutdownHandsOver(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	leader := c.Leader(10 * time.Second)
	old := c.Nodes[leader].Name()
	c.Stop(leader)
	next := c.Leader(5 * time.Second)
	if c.Nodes[next].Name() == old {
		t.Fatalf("leader unchanged after its shutdown")
	}
	if _, err := cluster.Plumbing(c.Nodes[next]).Claim(context.Background(), []fsm.Claim{claimNow("after-handover", 1)}, true); err != nil {
		t.Fatalf("claim after handover: %v", err)
	}
}

// TestRestartedNodeRejoinsFromDataDir runs against both log stores: a
// restart from disk is where they differ.
func TestRestartedNodeRejoinsFromDataDir(t *testing.T) {
	for _, store := range []cluster.LogStore{cluster.LogStoreBolt, cluster.LogStoreWAL} {
		t.Run(store.String(), func(t *testing.T) { restartFromDataDir(t, store) })
	}
}

func restartFromDataDir(t *testing.T, store cluster.LogStore) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{DataDir: true, LogStore: store})
	c.Leader(10 * time.Second)
	res, err := cluster.Plumbing(c.Nodes[1]).Claim(context.Background(), []fsm.Claim{claimNow("persisted", 7)}, true)
	if err != nil || !res.Outcomes[0].Granted() {
		t.Fatalf("claim: %v %+v", err, res)
	}
	clustertest.Eventually(t, 5*time.Second, func() bool {
		st, ok := cluster.Plumbing(c.Nodes[2]).LastGrant("persisted")
		return ok && st.Token == res.Index
	}, "grant never reached node2")
	if err := clustertest.Kill(c.Nodes[2]); err != nil {
		t.Fatal(err)
	}
	c.Nodes[2] = nil

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := cluster.Start(ctx, c.Configs[2])
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	c.Nodes[2] = n
	st, ok := cluster.Plumbing(n).LastGrant("persisted")
	if !ok || st.Token != res.Index || st.LastTick != 7 {
		t.Fatalf("restarted node lost the grant: %+v %v", st, ok)
	}
	servers, err := n.Servers()
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 3 {
		t.Fatalf("configuration after restart = %+v, want the original 3", servers)
	}
	// It works again: a claim through it is granted.
	if r, err := cluster.Plumbing(n).Claim(ctx, []fsm.Claim{claimNow("persisted", 8)}, true); err != nil || !r.Outcomes[0].Granted() {
		t.Fatalf("claim after restart: %v %+v", err, r)
	}
}

func TestLaterNodesJoinAsVotersThenNonVoters(t *testing.T) {
	c := clustertest.MakeCluster(t, 2, clustertest.Options{Configure: func(i int, cfg *cluster.Config) {
		cfg.MaxVoters = 3
	}})
	c.Leader(10 * time.Second)
	ports := clustertest.FreePorts(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, name := range []string{"late-voter", "late-nonvoter"} {
		cfg := cluster.Config{
			NodeName:        name,
			BindAddr:        "127.0.0.1:" + itoa(ports[2*i]),
			RaftAddr:        "127.0.0.1:" + itoa(ports[2*i+1]),
			Join:            []string{c.Nodes[0].GossipAddr()},
			BootstrapExpect: 2,
			MaxVoters:       3,
			Logger:          clustertest.Logger(name),
		}
		n, err := cluster.Start(ctx, cfg)
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		c.Nodes = append(c.Nodes, n)
	}
	leader := c.Leader(10 * time.Second)
	clustertest.Eventually(t, 10*time.Second, func() bool {
		servers, err := c.Nodes[leader].Servers()
		if err != nil || len(servers) != 4 {
			return false
		}
		voters := 0
		for _, s := range servers {
			if s.Voter {
				voters++
			}
		}
		return voters == 3
	}, "want 4 servers with 3 voters")
}

func TestStartFailsClearly(t *testing.T) {
	t.Run("bootstrap expect not reached", func(t *testing.T) {
		ports := clustertest.FreePorts(t, 2)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cluster.Start(ctx, cluster.Config{
			NodeName: "lonely", BindAddr: "127.0.0.1:" + itoa(ports[0]), RaftAddr: "127.0.0.1:" + itoa(ports[1]),
			BootstrapExpect: 3, Logger: clustertest.Logger("lonely"),
		})
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "BootstrapExpect=3") {
			t.Fatalf("got %v, want a deadline error that names BootstrapExpect=3", err)
		}
	})
	t.Run("join never answers", func(t *testing.T) {
		ports := clustertest.FreePorts(t, 3)
		_, err := cluster.Start(context.Background(), cluster.Config{
			NodeName: "joiner", BindAddr: "127.0.0.1:" + itoa(ports[0]), RaftAddr: "127.0.0.1:" + itoa(ports[1]),
			Join: []string{"127.0.0.1:" + itoa(ports[2])}, JoinTimeout: 500 * time.Millisecond, Logger: clustertest.Logger("joiner"),
		})
		if !errors.Is(err, cluster.ErrJoin) || !strings.Contains(err.Error(), itoa(ports[2])) {
			t.Fatalf("got %v, want ErrJoin naming the address", err)
		}
	})
	t.Run("data dir not writable", func(t *testing.T) {
		ports := clustertest.FreePorts(t, 2)
		_, err := cluster.Start(context.Background(), cluster.Config{
			NodeName: "ro", BindAddr: "127.0.0.1:" + itoa(ports[0]), RaftAddr: "127.0.0.1:" + itoa(ports[1]),
			DataDir: "/proc/interlock-cannot-write-here", BootstrapExpect: 1, Logger: clustertest.Logger("ro"),
		})
		if !errors.Is(err, cluster.ErrDataDir) || !strings.Contains(err.Error(), "/proc/interlock-cannot-write-here") {
			t.Fatalf("got %v, want ErrDataDir naming the directory", err)
		}
	})
	t.Run("raft port taken", func(t *testing.T) {
		c := clustertest.MakeCluster(t, 1, clustertest.Options{})
		ports := clustertest.FreePorts(t, 1)
		_, err := cluster.Start(context.Background(), cluster.Config{
			NodeName: "clash", BindAddr: "127.0.0.1:" + itoa(ports[0]), RaftAddr: c.Nodes[0].RaftAddr(),
			BootstrapExpect: 1, Logger: clustertest.Logger("clash"),
		})
		if err == nil || !strings.Contains(err.Error(), "RaftAddr") {
			t.Fatalf("got %v, want an error naming RaftAddr", err)
		}
	})
}

func TestSingleNode(t *testing.T) {
	for _, store := range []cluster.LogStore{cluster.LogStoreBolt, cluster.LogStoreWAL} {
		t.Run(store.String(), func(t *testing.T) {
			c := clustertest.MakeCluster(t, 1, clustertest.Options{DataDir: true, LogStore: store})
			if !c.Nodes[0].IsLeader() || c.Nodes[0].Leader() != c.Nodes[0].Name() {
				t.Fatalf("single node is not its own leader")
			}
			res, err := cluster.Plumbing(c.Nodes[0]).Claim(context.Background(), []fsm.Claim{claimNow("solo", 1)}, true)
			if err != nil || !res.Outcomes[0].Granted() {
				t.Fatalf("claim: %v %+v", err, res)
			}
		})
	}
}
