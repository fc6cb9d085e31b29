package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
)

// TestDamagedDataDirNamesFileAndRejoins damages a stopped node's DataDir
// twice: a truncated snapshot, then a raft.db whose first pages are
// garbage. Each time Start must fail with ErrDataDir naming the damaged
// file and the way back. Then the documented procedure (the node is out
// of the configuration after its graceful stop; move DataDir aside; start
// under the same name) must bring it back with the cluster's state.
func TestDamagedDataDirNamesFileAndRejoins(t *testing.T) {
	// bolt even where INTERLOCK_TEST_LOGSTORE says otherwise: the test
	// damages raft.db.
	c := clustertest.MakeCluster(t, 3, clustertest.Options{DataDir: true, Configure: func(_ int, cfg *cluster.Config) { cfg.LogStore = cluster.LogStoreBolt }})
	c.Leader(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kept, err := c.Nodes[0].TryLock(ctx, "kept", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Unlock(context.Background())
	clustertest.Eventually(t, 10*time.Second, func() bool { _, ok := cluster.State(c.Nodes[2]).Lock("kept"); return ok }, "node2 never applied the lock")
	if err := cluster.Snapshot(c.Nodes[2]); err != nil {
		t.Fatalf("snapshot on node2: %v", err)
	}
	cfg := c.Configs[2]
	c.Stop(2)

	states, _ := filepath.Glob(filepath.Join(cfg.DataDir, "snapshots", "*", "state.bin"))
	if len(states) == 0 {
		t.Fatalf("no snapshot in %s", cfg.DataDir)
	}
	slices.Sort(states)
	newest := states[len(states)-1]
	good, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(newest, good[:len(good)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	startFails(t, cfg, newest)

	if err := os.WriteFile(newest, good, 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(cfg.DataDir, "raft.db")
	f, err := os.OpenFile(db, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, 16<<10), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	startFails(t, cfg, db)

	// The procedure: the graceful stop took node2 out of the configuration;
	// move its DataDir aside and start it again under the same name.
	for _, n := range c.Running() {
		servers, err := n.Servers()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range servers {
			if s.Name == cfg.NodeName {
				t.Fatalf("%s still has %s in its configuration after the graceful stop", n.Name(), cfg.NodeName)
			}
		}
	}
	if err := os.Rename(cfg.DataDir, cfg.DataDir+".damaged"); err != nil {
		t.Fatal(err)
	}
	n, err := cluster.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start node2 on a fresh DataDir: %v", err)
	}
	c.Nodes[2] = n
	clustertest.Eventually(t, 20*time.Second, func() bool {
		st, ok := cluster.State(n).Lock("kept")
		return ok && st.Token == kept.Token() && n.AppliedIndex() >= c.Nodes[0].AppliedIndex()
	}, "node2 did not get the cluster's state back: applied %d, node0 %d", n.AppliedIndex(), c.Nodes[0].AppliedIndex())
}

// startFails starts a node with cfg and checks that Start fails with
// ErrDataDir naming file and the rejoin procedure.
func startFails(t *testing.T, cfg cluster.Config, file string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := cluster.Start(ctx, cfg)
	if err == nil {
		n.Shutdown(context.Background())
		t.Fatalf("Start on a DataDir with %s damaged succeeded", file)
	}
	if !errors.Is(err, cluster.ErrDataDir) || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "move DataDir aside") {
		t.Fatalf("Start with %s damaged: %v; want ErrDataDir naming the file and the way back", file, err)
	}
	t.Logf("damaged %s: %v", filepath.Base(file), err)
}
