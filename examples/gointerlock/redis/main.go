// Command redis is gointerlock's example/redis/basic/main.go ported to
// Interlock: the import changed, and the Redis fields (LockVendor,
// RedisHost, RedisPassword) became Cluster: node, from the cluster.Start
// call that each replica makes once. The node's settings come from the
// environment, so the migration test can start three replicas:
// INTERLOCK_NODE_NAME, INTERLOCK_BIND_ADDR, INTERLOCK_RAFT_ADDR,
// INTERLOCK_JOIN (comma-separated) and INTERLOCK_BOOTSTRAP_EXPECT; with
// none set it forms a one-node cluster on the default ports.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/interlockraft/interlock/cluster"
	gointerlock "github.com/interlockraft/interlock/scheduler"
)

func myJob() {
	fmt.Println(time.Now(), " - called")
}

func main() {
	cnx := context.Background()

	node, err := cluster.Start(cnx, nodeConfig())
	if err != nil {
		log.Fatalf("Error: %s", err)
	}
	defer node.Shutdown(context.Background())

	var job = gointerlock.GoInterval{
		Name:     "MyTestJob",
		Interval: 2 * time.Second,
		Arg:      myJob,
		Cluster:  node,
	}

	//test cron
	go func() {
		err := job.Run(cnx)
		if err != nil {
			log.Fatalf("Error: %s", err)
		}
	}()

	//example: just run it for 10 second before application exits
	time.Sleep(10 * time.Second)
}

// nodeConfig reads this replica's node settings from the environment.
func nodeConfig() cluster.Config {
	cfg := cluster.Config{
		NodeName:        os.Getenv("INTERLOCK_NODE_NAME"),
		BindAddr:        os.Getenv("INTERLOCK_BIND_ADDR"),
		RaftAddr:        os.Getenv("INTERLOCK_RAFT_ADDR"),
		BootstrapExpect: 1,
	}
	if j := os.Getenv("INTERLOCK_JOIN"); j != "" {
		cfg.Join = strings.Split(j, ",")
	}
	if e := os.Getenv("INTERLOCK_BOOTSTRAP_EXPECT"); e != "" {
		n, err := strconv.Atoi(e)
		if err != nil {
			log.Fatalf("INTERLOCK_BOOTSTRAP_EXPECT=%q: %v", e, err)
		}
		cfg.BootstrapExpect = n
	}
	return cfg
}
