package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
)

// startInterlock starts n Interlock nodes in this process, bolt on disk
// under dir, and waits until all are in one cluster with a leader.
func startInterlock(dir string, n int) ([]*cluster.Node, error) {
	return startInterlockStore(dir, n, cluster.LogStoreBolt)
}

// startInterlockStore is startInterlock with the given log store.
func startInterlockStore(dir string, n int, store cluster.LogStore) ([]*cluster.Node, error) {
	ports := freePorts(2 * n)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// Node logs go to a file: a graceful Shutdown logs its closing
	// connections at ERROR level.
	logf, err := os.Create(filepath.Join(dir, "nodes.log"))
	if err != nil {
		return nil, err
	}
	nodes := make([]*cluster.Node, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		var join []string
		for j := 0; j < n; j++ {
			if j != i {
				join = append(join, "127.0.0.1:"+strconv.Itoa(ports[j]))
			}
		}
		name := fmt.Sprintf("node%d", i)
		cfg := cluster.Config{
			NodeName:        name,
			BindAddr:        "127.0.0.1:" + strconv.Itoa(ports[i]),
			RaftAddr:        "127.0.0.1:" + strconv.Itoa(ports[n+i]),
			DataDir:         filepath.Join(dir, name),
			LogStore:        store,
			Join:            join,
			BootstrapExpect: n,
			Logger:          hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: logf}),
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			nodes[i], errs[i] = cluster.Start(ctx, cfg)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			stopInterlock(nodes)
			return nil, fmt.Errorf("start interlock node %d: %w", i, err)
		}
	}
	return nodes, nil
}

// stopInterlock kills the nodes (clustertest.Kill): nothing is measured at
// teardown, and a graceful leave would cost seconds per cluster.
func stopInterlock(nodes []*cluster.Node) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		if n == nil {
			continue
		}
		wg.Add(1)
		go func(n *cluster.Node) { defer wg.Done(); _ = clustertest.Kill(n) }(n)
	}
	wg.Wait()
}

// interlockLeader returns the index of the node that leads, waiting for one.
func interlockLeader(nodes []*cluster.Node) int {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for i, n := range nodes {
			if n != nil && n.IsLeader() {
				return i
			}
		}
	}
	return 0
}

// etcdCluster is 3 embedded etcd members in this process.
type etcdCluster struct {
	members     []*embed.Etcd
	clientPorts []int
}

// startEtcd starts n embedded etcd members in this process, on etcd's
// default Raft timing, or on Interlock's when equal (etcdEqualTiming).
func startEtcd(dir string, n int, equal bool) (*etcdCluster, error) {
	ports := freePorts(2 * n)
	pp, cp := ports[:n], ports[n:]
	c := &etcdCluster{members: make([]*embed.Etcd, n), clientPorts: cp}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cfg := etcdMemberConfig(i, pp, cp, filepath.Join(dir, fmt.Sprintf("m%d", i)))
			// In the bench's own process, keep etcd quiet: Close logs its
			// listeners' shutdown as errors.
			cfg.LogLevel = "fatal"
			if equal {
				etcdEqualTiming(cfg)
			}
			e, err := embed.StartEtcd(cfg)
			if err != nil {
				errs[i] = err
				return
			}
			c.members[i] = e
			select {
			case <-e.Server.ReadyNotify():
			case <-time.After(60 * time.Second):
				errs[i] = fmt.Errorf("etcd member %d not ready after 60s", i)
			}
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

func (c *etcdCluster) close() {
	var wg sync.WaitGroup
	for _, e := range c.members {
		if e == nil {
			continue
		}
		wg.Add(1)
		go func(e *embed.Etcd) { defer wg.Done(); e.Close() }(e)
	}
	wg.Wait()
}

// follower returns the index of a member that is not the leader.
func (c *etcdCluster) follower() int {
	for i, e := range c.members {
		if e.Server.Leader() != e.Server.MemberID() {
			return i
		}
	}
	return 0
}
