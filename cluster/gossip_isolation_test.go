package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
)

// TestLabelsKeepClustersApart starts two three-node clusters with different
// ClusterNames on one host, every node's Join listing the other cluster's
// nodes first, keyed with the same key or not keyed at all. Gossip carries
// the ClusterName as memberlist's label, so no packet of one cluster is
// accepted by the other: each node's memberlist, before any metadata
// filter, only ever holds its own cluster's three nodes.
func TestLabelsKeepClustersApart(t *testing.T) {
	key := []byte("0123456789abcdef")
	tests := []struct {
		name string
		key  []byte
	}{
		{"unkeyed", nil},
		{"same key", key},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 3
			ports := clustertest.FreePorts(t, 4*n)
			gossipA, gossipB := ports[:n], ports[n:2*n]
			start := func(name string, own, other []int, raft []int) *clustertest.Cluster {
				c := &clustertest.Cluster{Nodes: make([]*cluster.Node, n), Configs: make([]cluster.Config, n)}
				for i := range n {
					cfg := clustertest.Config(t, i, own, raft[i])
					cfg.NodeName = fmt.Sprintf("%s-node%d", name, i)
					cfg.ClusterName = name
					cfg.SecretKey = tt.key
					var cross []string
					for _, p := range other {
						cross = append(cross, "127.0.0.1:"+strconv.Itoa(p))
					}
					cfg.Join = append(cross, cfg.Join...)
					c.Configs[i] = cfg
				}
				return c
			}
			a := start("alpha", gossipA, gossipB, ports[2*n:3*n])
			b := start("beta", gossipB, gossipA, ports[3*n:])
			all := []*clustertest.Cluster{a, b}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			errs := make(chan error, 2*n)
			for _, c := range all {
				for i := range n {
					go func() {
						node, err := cluster.Start(ctx, c.Configs[i])
						c.Nodes[i] = node
						errs <- err
					}()
				}
			}
			for range 2 * n {
				if err := <-errs; err != nil {
					t.Fatalf("start: %v", err)
				}
			}
			for _, c := range all {
				t.Cleanup(c.Shutdown)
			}
			own := func(c *clustertest.Cluster) []string {
				var names []string
				for _, cfg := range c.Configs {
					names = append(names, cfg.NodeName)
				}
				return names
			}
			check := func() bool {
				for _, c := range all {
					want := own(c)
					for _, node := range c.Nodes {
						got := cluster.GossipMemberNames(node)
						for _, name := range got {
							if !slices.Contains(want, name) {
								t.Fatalf("%s's memberlist holds %s of the other cluster: %v", node.Name(), name, got)
							}
						}
						if len(got) != len(want) {
							return false
						}
					}
				}
				return true
			}
			clustertest.Eventually(t, 30*time.Second, check, "each cluster's gossip never held its own %d nodes", n)
			// Keep watching for several gossip rounds (probe interval 1 s,
			// push-pull on join and every 30 s): nothing may leak across.
			watch := time.Now().Add(3 * time.Second)
			for time.Now().Before(watch) {
				check()
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// TestSecretKeyRefusesWrongOrMissingKey starts a keyed three-node cluster
// and then a fourth node joining it with a different key, and one with no
// key. Neither gets in: Start fails with an error that says the join found
// no peer, and the cluster's gossip and Raft membership stay at three.
func TestSecretKeyRefusesWrongOrMissingKey(t *testing.T) {
	key := []byte("0123456789abcdef")
	c := clustertest.MakeCluster(t, 3, clustertest.Options{Configure: func(i int, cfg *cluster.Config) {
		cfg.SecretKey = key
	}})
	leader := c.Leader(10 * time.Second)
	tests := []struct {
		name string
		key  []byte
	}{
		{"wrong key", []byte("fedcba9876543210")},
		{"no key", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ports := clustertest.FreePorts(t, 2)
			cfg := clustertest.Config(t, 0, []int{ports[0]}, ports[1])
			cfg.NodeName = "intruder"
			cfg.SecretKey = tt.key
			cfg.BootstrapExpect = 4
			for _, other := range c.Configs {
				cfg.Join = append(cfg.Join, other.BindAddr)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			n, err := cluster.Start(ctx, cfg)
			if err == nil {
				n.Shutdown(context.Background())
				t.Fatalf("a node with %s started in a keyed cluster", tt.name)
			}
			t.Logf("Start with %s: %v", tt.name, err)
			for _, node := range c.Nodes {
				if got := cluster.GossipMemberNames(node); slices.Contains(got, "intruder") || len(got) != 3 {
					t.Errorf("%s's gossip members = %v, want the 3 keyed nodes", node.Name(), got)
				}
			}
			servers, err := c.Nodes[leader].Servers()
			if err != nil {
				t.Fatal(err)
			}
			if len(servers) != 3 {
				t.Errorf("Raft servers = %v, want the 3 keyed nodes", servers)
			}
		})
	}
}
