package cluster_test

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
)

// TestGossipKeyRotation rotates the gossip key of a live three-node
// cluster while a job ticks every 100 ms: install the new key everywhere,
// make it the primary, remove the old one. Steps out of order are refused
// and change nothing. Every tick runs exactly once throughout; afterwards
// a node holding only the old key cannot join, and one with the new key
// can.
func TestGossipKeyRotation(t *testing.T) {
	oldKey, newKey := []byte("old-key-16-bytes"), []byte("new-key-32-bytes-new-key-32-byte")
	c := clustertest.MakeCluster(t, 3, clustertest.Options{Configure: func(i int, cfg *cluster.Config) {
		cfg.SecretKey = oldKey
	}})
	ticks := &tickLog{}
	for _, n := range c.Nodes {
		runScheduler(t, n, ticks.job("rotate-tick"))
	}
	first := ticks.waitPast(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := c.Nodes[1]
	b64 := base64.StdEncoding.EncodeToString
	want := func(res cluster.KeyringResult, keys map[string]int, primary string) {
		t.Helper()
		if res.Members != 3 || len(res.Errors) != 0 {
			t.Fatalf("result = %+v; want 3 members and no errors", res)
		}
		for k, n := range keys {
			if res.Keys[k] != n {
				t.Errorf("key %s held by %d members; want %d (result %+v)", k, res.Keys[k], n, res)
			}
		}
		if len(res.Keys) != len(keys) || res.PrimaryKeys[primary] != 3 {
			t.Errorf("result %+v; want keys %v with primary %s on all 3", res, keys, primary)
		}
	}

	// Out of order: using or removing keys before their time is refused.
	if _, err := admin.UseKey(ctx, newKey); !errors.Is(err, cluster.ErrKeyring) {
		t.Fatalf("UseKey of a key no member holds = %v; want ErrKeyring", err)
	}
	if _, err := admin.RemoveKey(ctx, oldKey); !errors.Is(err, cluster.ErrKeyring) {
		t.Fatalf("RemoveKey of the primary = %v; want ErrKeyring", err)
	}
	if _, err := admin.InstallKey(ctx, []byte("short")); !errors.Is(err, cluster.ErrKeyring) {
		t.Fatalf("InstallKey of a 5-byte key = %v; want ErrKeyring", err)
	}

	res, err := admin.InstallKey(ctx, newKey)
	if err != nil {
		t.Fatalf("InstallKey: %v", err)
	}
	want(res, map[string]int{b64(oldKey): 3, b64(newKey): 3}, b64(oldKey))
	ticks.waitPast(t, 3)
	if res, err = admin.UseKey(ctx, newKey); err != nil {
		t.Fatalf("UseKey: %v", err)
	}
	want(res, map[string]int{b64(oldKey): 3, b64(newKey): 3}, b64(newKey))
	ticks.waitPast(t, 3)
	if res, err = admin.RemoveKey(ctx, oldKey); err != nil {
		t.Fatalf("RemoveKey: %v", err)
	}
	want(res, map[string]int{b64(newKey): 3}, b64(newKey))
	if res, err = c.Nodes[2].ListKeys(ctx); err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	want(res, map[string]int{b64(newKey): 3}, b64(newKey))

	// Gossip still works under the new key: every node sees the other two
	// alive, across a few more probe rounds.
	last := ticks.waitPast(t, 10)
	for _, n := range c.Nodes {
		for _, m := range n.Members() {
			if m.Status != cluster.StatusAlive {
				t.Errorf("%s sees %s as %s after the rotation", n.Name(), m.Name, m.Status)
			}
		}
	}
	ticks.exactlyOnce(t, first+1, last)
	t.Logf("ticks %d..%d each ran exactly once across the rotation", first+1, last)

	join := func(name string, key []byte, timeout time.Duration) (*cluster.Node, error) {
		ports := clustertest.FreePorts(t, 2)
		cfg := clustertest.Config(t, 0, []int{ports[0]}, ports[1])
		cfg.NodeName = name
		cfg.BootstrapExpect = 0
		cfg.SecretKey = key
		for _, o := range c.Configs {
			cfg.Join = append(cfg.Join, o.BindAddr)
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return cluster.Start(ctx, cfg)
	}
	if n, err := join("stale", oldKey, 4*time.Second); err == nil {
		n.Shutdown(context.Background())
		t.Fatal("a node with only the removed key joined")
	}
	for _, n := range c.Nodes {
		if got := cluster.GossipMemberNames(n); slices.Contains(got, "stale") {
			t.Errorf("%s's gossip holds the node with the removed key: %v", n.Name(), got)
		}
	}
	fresh, err := join("fresh", newKey, 20*time.Second)
	if err != nil {
		t.Fatalf("a node with the new key could not join: %v", err)
	}
	fresh.Shutdown(context.Background())
}

// TestKeyringNeedsSecretKey checks that keyring calls on a node without a
// gossip key say so rather than half-working.
func TestKeyringNeedsSecretKey(t *testing.T) {
	c := clustertest.MakeCluster(t, 1, clustertest.Options{})
	if _, err := c.Nodes[0].InstallKey(context.Background(), []byte("0123456789abcdef")); !errors.Is(err, cluster.ErrGossipNotEncrypted) {
		t.Fatalf("InstallKey without SecretKey = %v; want ErrGossipNotEncrypted", err)
	}
	if _, err := c.Nodes[0].ListKeys(context.Background()); !errors.Is(err, cluster.ErrGossipNotEncrypted) {
		t.Fatalf("ListKeys without SecretKey = %v; want ErrGossipNotEncrypted", err)
	}
}
