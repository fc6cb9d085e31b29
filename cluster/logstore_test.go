package cluster_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/fsm"
)

func TestParseLogStore(t *testing.T) {
	cases := []struct {
		in   string
		want cluster.LogStore
		err  bool
	}{
		{"bolt", cluster.LogStoreBolt, false},
		{"", cluster.LogStoreBolt, false},
		{"wal", cluster.LogStoreWAL, false},
		{"WAL", 0, true},
		{"sqlite", 0, true},
	}
	for _, tc := range cases {
		got, err := cluster.ParseLogStore(tc.in)
		switch {
		case tc.err && (!errors.Is(err, cluster.ErrInvalidConfig) || !strings.Contains(err.Error(), `"bolt"`)):
			t.Errorf("ParseLogStore(%q) error = %v, want ErrInvalidConfig listing the valid names", tc.in, err)
		case !tc.err && (err != nil || got != tc.want):
			t.Errorf("ParseLogStore(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		case !tc.err && tc.in != "" && got.String() != tc.in:
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tc.in)
		}
	}
	if s := cluster.LogStore(9).String(); s != "LogStore(9)" {
		t.Errorf("unknown store's String() = %q", s)
	}
}

// TestLogStoreLayoutAndMismatch checks where each store keeps its log (bolt
// where every release before LogStore kept it), that a node restarts from
// it, and that Start refuses a DataDir holding the other store's log rather
// than starting empty and forgetting the node's term and entries.
func TestLogStoreLayoutAndMismatch(t *testing.T) {
	cases := []struct {
		store, other cluster.LogStore
		file, absent string
	}{
		{cluster.LogStoreBolt, cluster.LogStoreWAL, "raft.db", "wal"},
		{cluster.LogStoreWAL, cluster.LogStoreBolt, "wal", "raft.db"},
	}
	for _, tc := range cases {
		t.Run(tc.store.String(), func(t *testing.T) {
			// Configure sets the store last, so that INTERLOCK_TEST_LOGSTORE
			// cannot turn the bolt case into another wal case.
			c := clustertest.MakeCluster(t, 1, clustertest.Options{DataDir: true, Configure: func(_ int, cfg *cluster.Config) { cfg.LogStore = tc.store }})
			dir := c.Configs[0].DataDir
			res, err := cluster.Plumbing(c.Nodes[0]).Claim(context.Background(), []fsm.Claim{claimNow("kept", 3)}, true)
			if err != nil || !res.Outcomes[0].Granted() {
				t.Fatalf("claim: %v %+v", err, res)
			}
			if _, err := os.Stat(filepath.Join(dir, tc.file)); err != nil {
				t.Fatalf("%s store did not write %s: %v", tc.store, tc.file, err)
			}
			if _, err := os.Stat(filepath.Join(dir, tc.absent)); !os.IsNotExist(err) {
				t.Fatalf("%s store wrote %s too (%v)", tc.store, tc.absent, err)
			}
			c.Stop(0)

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			wrong := c.Configs[0]
			wrong.LogStore = tc.other
			if n, err := cluster.Start(ctx, wrong); !errors.Is(err, cluster.ErrDataDir) || !strings.Contains(err.Error(), "LogStore") {
				if n != nil {
					n.Shutdown(ctx)
				}
				t.Fatalf("start with %s on a %s DataDir: %v, want ErrDataDir naming LogStore", tc.other, tc.store, err)
			}
			n, err := cluster.Start(ctx, c.Configs[0])
			if err != nil {
				t.Fatalf("restart with %s: %v", tc.store, err)
			}
			c.Nodes[0] = n
			if st, ok := cluster.Plumbing(n).LastGrant("kept"); !ok || st.Token != res.Index {
				t.Fatalf("restarted %s node lost the grant: %+v %v", tc.store, st, ok)
			}
		})
	}
}
