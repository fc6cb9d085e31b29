package cluster_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster/clustertest"
)

// TestNodeServesThroughGarbageOnItsPort sends garbage at the leader's
// Raft/RPC port while it serves: connections with an unknown kind byte, RPC
// frames announcing 64 MiB with nothing following, truncated RPC frames
// and Raft streams that send noise, all held open. A follower's lock,
// forwarded to the leader over the same port, still succeeds while they
// are open, and the cluster keeps its leader.
func TestNodeServesThroughGarbageOnItsPort(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	leader := c.Leader(10 * time.Second)
	follower := (leader + 1) % 3
	addr := c.Nodes[leader].RaftAddr()
	const kindRaft, kindRPC = 1, 2
	garbage := [][]byte{
		{0x47, 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P'},
		binary.AppendUvarint([]byte{kindRPC, 1}, 64<<20),
		append(binary.AppendUvarint([]byte{kindRPC, 1}, 100), "short"...),
		{kindRPC, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		{kindRaft, 0xde, 0xad, 0xbe, 0xef, 0xc1, 0xc1, 0xc1},
	}
	var open []net.Conn
	t.Cleanup(func() {
		for _, conn := range open {
			conn.Close()
		}
	})
	for range 20 {
		for _, g := range garbage {
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatalf("dial %s: %v", addr, err)
			}
			open = append(open, conn)
			if _, err := conn.Write(g); err != nil {
				t.Fatalf("write garbage: %v", err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 5 {
		name := fmt.Sprintf("res-%d", i)
		l, err := c.Nodes[follower].TryLock(ctx, name, 10*time.Second)
		if err != nil {
			t.Fatalf("forwarded TryLock(%s) with %d garbage connections open: %v", name, len(open), err)
		}
		if err := l.Unlock(ctx); err != nil {
			t.Fatalf("Unlock(%s): %v", name, err)
		}
	}
	if now := c.Leader(10 * time.Second); now != leader {
		t.Errorf("leadership moved from node %d to %d under garbage", leader, now)
	}
}
