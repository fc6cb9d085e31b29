package cluster_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/fsm"
)

func TestDuplicateNodeNameIsRefused(t *testing.T) {
	c := clustertest.MakeCluster(t, 2, clustertest.Options{})
	c.Leader(10 * time.Second)
	ports := clustertest.FreePorts(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	n, err := cluster.Start(ctx, cluster.Config{
		NodeName:        c.Nodes[1].Name(),
		BindAddr:        "127.0.0.1:" + itoa(ports[0]),
		RaftAddr:        "127.0.0.1:" + itoa(ports[1]),
		Join:            []string{c.Nodes[0].GossipAddr()},
		BootstrapExpect: 2,
		Logger:          clustertest.Logger("impostor"),
	})
	if err == nil {
		n.Shutdown(context.Background())
		t.Fatal("a second live node with the same NodeName was accepted")
	}
	if !errors.Is(err, cluster.ErrNameConflict) {
		t.Fatalf("got %v, want ErrNameConflict", err)
	}
	t.Log(err)
	// The original keeps its place.
	servers := mustServers(t, c.Nodes[0])
	for _, s := range servers {
		if s.Name == c.Nodes[1].Name() && s.Address != c.Nodes[1].RaftAddr() {
			t.Fatalf("configuration now points %s at the impostor's %s", s.Name, s.Address)
		}
	}
}

func TestSameNameAtNewAddressReplacesStalePeer(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{DataDir: true})
	leader := c.Leader(10 * time.Second)
	victim := (leader + 1) % 3
	name := c.Nodes[victim].Name()
	if err := clustertest.Kill(c.Nodes[victim]); err != nil {
		t.Fatal(err)
	}
	c.Nodes[victim] = nil

	// The replica comes back at once, under the same name and DataDir but
	// new ports, as a rescheduled container with a new IP would.
	ports := clustertest.FreePorts(t, 2)
	cfg := c.Configs[victim]
	cfg.BindAddr = "127.0.0.1:" + itoa(ports[0])
	cfg.RaftAddr = "127.0.0.1:" + itoa(ports[1])
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n, err := cluster.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("restart at a new address: %v", err)
	}
	c.Nodes[victim] = n
	// Gossip must first declare the old record dead (its suspicion timeout
	// grows on a loaded machine), so allow well over that.
	clustertest.Eventually(t, 50*time.Second, func() bool {
		l := c.Leader(10 * time.Second)
		servers, err := c.Nodes[l].Servers()
		if err != nil || len(servers) != 3 {
			return false
		}
		for _, s := range servers {
			if s.Name == name {
				return s.Address == n.RaftAddr()
			}
		}
		return false
	}, "configuration never moved %s to its new address", name)
	// One cluster, one leader, and it still commits.
	l := c.Leader(10 * time.Second)
	if _, err := cluster.Plumbing(c.Nodes[l]).Claim(ctx, []fsm.Claim{claimNow("after-move", 1)}, true); err != nil {
		t.Fatalf("claim after the move: %v", err)
	}
}
