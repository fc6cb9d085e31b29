package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/cluster"
)

// startExampleNode starts a one-node cluster on loopback, on ports the
// system picks, as the examples need; a replica would list its peers in
// Join and set BootstrapExpect to their number.
func startExampleNode() (*cluster.Node, error) {
	return cluster.Start(context.Background(), cluster.Config{
		NodeName:        "example",
		BindAddr:        "127.0.0.1:0",
		RaftAddr:        "127.0.0.1:0",
		BootstrapExpect: 1,
		Logger:          hclog.NewNullLogger(),
	})
}

// Start joins (here: forms) a cluster and returns once the node has a
// leader. Every replica of an application starts one node.
func ExampleStart() {
	node, err := cluster.Start(context.Background(), cluster.Config{
		NodeName:        "example",
		BindAddr:        "127.0.0.1:0", // gossip; production: "0.0.0.0:7946"
		RaftAddr:        "127.0.0.1:0", // Raft and RPC; production: ":7947"
		BootstrapExpect: 1,             // 3 for three replicas, with Join listing the others
		Logger:          hclog.NewNullLogger(),
	})
	if err != nil {
		fmt.Println("start:", err)
		return
	}
	defer node.Shutdown(context.Background())
	fmt.Println(node.Name(), "leads:", node.Leader() == node.Name())
	// Output: example leads: true
}

// Lock blocks until the lock is granted. The lease's token increases with
// every grant of the name: pass it to the resource the lock guards.
func ExampleNode_Lock() {
	node, err := startExampleNode()
	if err != nil {
		fmt.Println("start:", err)
		return
	}
	defer node.Shutdown(context.Background())
	ctx := context.Background()
	first, err := node.Lock(ctx, "invoice-export", 10*time.Second)
	if err != nil {
		fmt.Println("lock:", err)
		return
	}
	if err := first.Unlock(ctx); err != nil {
		fmt.Println("unlock:", err)
		return
	}
	second, err := node.Lock(ctx, "invoice-export", 10*time.Second, cluster.WithKeepAlive())
	if err != nil {
		fmt.Println("lock:", err)
		return
	}
	defer second.Unlock(ctx)
	fmt.Println("token increased:", second.Token() > first.Token())
	// Output: token increased: true
}

// TryLock returns ErrLocked at once while another lease holds the lock.
func ExampleNode_TryLock() {
	node, err := startExampleNode()
	if err != nil {
		fmt.Println("start:", err)
		return
	}
	defer node.Shutdown(context.Background())
	ctx := context.Background()
	held, err := node.TryLock(ctx, "report", 10*time.Second)
	if err != nil {
		fmt.Println("trylock:", err)
		return
	}
	_, err = node.TryLock(ctx, "report", 10*time.Second)
	fmt.Println("second TryLock:", errors.Is(err, cluster.ErrLocked))
	if err := held.Unlock(ctx); err != nil {
		fmt.Println("unlock:", err)
		return
	}
	again, err := node.TryLock(ctx, "report", 10*time.Second)
	if err != nil {
		fmt.Println("trylock:", err)
		return
	}
	defer again.Unlock(ctx)
	fmt.Println("after Unlock:", again.Token() > held.Token())
	// Output:
	// second TryLock: true
	// after Unlock: true
}
