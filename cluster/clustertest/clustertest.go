// Package clustertest builds real Interlock clusters on 127.0.0.1 for tests,
// in one call, in the style of hashicorp/raft's MakeCluster. Nodes use real
// TCP and UDP on free ports, real gossip and real Raft; only the process is
// shared.
package clustertest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/cluster"
)

// Options tunes MakeCluster. The zero value gives in-memory stores.
type Options struct {
	// DataDir puts each node's Raft log on disk under t.TempDir(), in
	// the store LogStore names.
	DataDir bool
	// LogStore is the disk store with DataDir. The zero value is
	// cluster.LogStoreBolt, unless the INTERLOCK_TEST_LOGSTORE environment
	// variable names another ("wal"), so that a whole suite can be run
	// against either store without editing it.
	LogStore cluster.LogStore
	// Configure, if set, edits node i's config before it starts.
	Configure func(i int, c *cluster.Config)
	// StartTimeout bounds forming the cluster. Default 30s.
	StartTimeout time.Duration
}

// Cluster is a set of running nodes. Methods are for the test goroutine.
type Cluster struct {
	t       testing.TB
	Nodes   []*cluster.Node
	Configs []cluster.Config
}

// Logger returns the logger test nodes use: silent unless the
// INTERLOCK_TEST_LOG environment variable names a level (debug, info, ...).
func Logger(name string) hclog.Logger {
	level := hclog.Off
	if v := os.Getenv("INTERLOCK_TEST_LOG"); v != "" {
		level = hclog.LevelFromString(v)
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: level, Output: os.Stderr})
}

// logStore is the store a test asked for, or the one INTERLOCK_TEST_LOGSTORE
// names when it asked for the default.
func logStore(t testing.TB, asked cluster.LogStore) cluster.LogStore {
	v := os.Getenv("INTERLOCK_TEST_LOGSTORE")
	if asked != cluster.LogStoreBolt || v == "" {
		return asked
	}
	s, err := cluster.ParseLogStore(v)
	if err != nil {
		t.Fatalf("INTERLOCK_TEST_LOGSTORE: %v", err)
	}
	return s
}

// Config returns the config of node i of an n-node cluster whose gossip
// ports are given; every node lists every other in Join.
func Config(t testing.TB, i int, gossipPorts []int, raftPort int) cluster.Config {
	var join []string
	for j, p := range gossipPorts {
		if j != i {
			join = append(join, "127.0.0.1:"+strconv.Itoa(p))
		}
	}
	name := fmt.Sprintf("node%d", i)
	return cluster.Config{
		NodeName:          name,
		BindAddr:          "127.0.0.1:" + strconv.Itoa(gossipPorts[i]),
		RaftAddr:          "127.0.0.1:" + strconv.Itoa(raftPort),
		Join:              join,
		BootstrapExpect:   len(gossipPorts),
		Logger:            Logger(name),
		ReconcileInterval: 500 * time.Millisecond,
	}
}

// MakeCluster starts n nodes concurrently with BootstrapExpect=n and waits
// until every one of them is in the cluster with a leader. It registers
// Shutdown with t.Cleanup.
func MakeCluster(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 30 * time.Second
	}
	ports := FreePorts(t, 2*n)
	c := &Cluster{t: t, Nodes: make([]*cluster.Node, n), Configs: make([]cluster.Config, n)}
	for i := 0; i < n; i++ {
		cfg := Config(t, i, ports[:n], ports[n+i])
		if opts.DataDir {
			cfg.DataDir = t.TempDir()
			cfg.LogStore = logStore(t, opts.LogStore)
		}
		if opts.Configure != nil {
			opts.Configure(i, &cfg)
		}
		c.Configs[i] = cfg
	}
	t.Cleanup(c.Shutdown)
	c.StartAll(opts.StartTimeout)
	return c
}

// StartAll starts every node of c that is not running, from its Config,
// concurrently, as after a Shutdown of the whole cluster, and fails the
// test if one does not start within timeout. Call it from the test's
// goroutine.
func (c *Cluster) StartAll(timeout time.Duration) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i := range c.Nodes {
		if c.Nodes[i] != nil {
			continue
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c.Nodes[i], errs[i] = cluster.Start(ctx, c.Configs[i])
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			c.t.Fatalf("start node %d: %v", i, err)
		}
	}
}

// Shutdown stops every node that is still running, concurrently.
func (c *Cluster) Shutdown() {
	var wg sync.WaitGroup
	for i, n := range c.Nodes {
		if n == nil {
			continue
		}
		wg.Add(1)
		go func(i int, n *cluster.Node) {
			defer wg.Done()
			if err := n.Shutdown(context.Background()); err != nil {
				c.t.Logf("shutdown node %d: %v", i, err)
			}
		}(i, n)
	}
	wg.Wait()
}

// Running returns the nodes not yet removed with Stop.
func (c *Cluster) Running() []*cluster.Node {
	var out []*cluster.Node
	for _, n := range c.Nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// Stop shuts node i down and forgets it.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	n := c.Nodes[i]
	c.Nodes[i] = nil
	if n == nil {
		return
	}
	if err := n.Shutdown(context.Background()); err != nil {
		c.t.Logf("stop node %d: %v", i, err)
	}
}

// Eventually polls cond every 10ms until it holds or timeout passes, then
// fails the test with msg.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: "+msg, append([]any{timeout}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Leader waits for all running nodes to agree on one leader and returns
// its index.
func (c *Cluster) Leader(timeout time.Duration) int {
	c.t.Helper()
	idx := -1
	Eventually(c.t, timeout, func() bool {
		leader := ""
		for _, n := range c.Running() {
			l := n.Leader()
			if l == "" || (leader != "" && l != leader) {
				return false
			}
			leader = l
		}
		for i, n := range c.Nodes {
			if n != nil && n.Name() == leader {
				idx = i
				return n.IsLeader()
			}
		}
		return false
	}, "nodes never agreed on a running leader")
	return idx
}
