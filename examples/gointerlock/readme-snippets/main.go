// Command readme-snippets holds the GoInterval snippets of gointerlock's
// README ported to Interlock, each in a function: the import changed, and
// the Redis connection (RedisConnector, or RedisHost and RedisPassword)
// became Cluster: node. The README's own Redis snippet calls
// jobTicker.Run, a name it never declares; here it is job.Run. main runs
// both for five seconds on a one-node cluster on loopback, so the
// migration test can check that they run.
package main

import (
	"context"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/interlockraft/interlock/cluster"
	gointerlock "github.com/interlockraft/interlock/scheduler"
)

// localMode is the README's first snippet (Interval every 2 seconds).
func localMode(ctx context.Context) {
	var job = gointerlock.GoInterval{
		Interval: 2 * time.Second,
		Arg:      myJob,
	}
	err := job.Run(ctx)
	if err != nil {
		log.Fatalf("Error: %s", err)
	}
}

// distributedMode is the README's "Existing Redis Connection" snippet,
// with the connection replaced by the node.
func distributedMode(ctx context.Context, node *cluster.Node) {
	var job = gointerlock.GoInterval{
		Interval: 2 * time.Second,
		Arg:      myJob,
		Name:     "MyTestJob",
		Cluster:  node,
	}
	err := job.Run(ctx)
	if err != nil {
		log.Fatalf("Error: %s", err)
	}
}

func myJob() {
	fmt.Println(time.Now(), " - called")
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	node, err := cluster.Start(ctx, cluster.Config{
		NodeName:        "readme",
		BindAddr:        "127.0.0.1:0",
		RaftAddr:        "127.0.0.1:0",
		BootstrapExpect: 1,
	})
	if err != nil {
		log.Fatalf("Error: %s", err)
	}
	defer node.Shutdown(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); localMode(ctx) }()
	go func() { defer wg.Done(); distributedMode(ctx, node) }()
	wg.Wait()
}
