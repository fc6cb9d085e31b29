package scheduler_test

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/scheduler"
)

// Singleton runs Func on one replica at a time: every replica calls Run
// with the same Name, and the one holding the lock runs Func with its
// fencing token. Here a one-node cluster holds it at once.
func ExampleSingleton_Run() {
	node, err := cluster.Start(context.Background(), cluster.Config{
		NodeName:        "example",
		BindAddr:        "127.0.0.1:0",
		RaftAddr:        "127.0.0.1:0",
		BootstrapExpect: 1,
		Logger:          hclog.NewNullLogger(),
	})
	if err != nil {
		fmt.Println("start:", err)
		return
	}
	defer node.Shutdown(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	s := &scheduler.Singleton{
		Name:    "outbox-relay",
		Cluster: node,
		Func: func(ctx context.Context, token uint64) error {
			fmt.Println("relaying, token > 0:", token > 0)
			cancel() // a real consumer would loop until ctx ends
			<-ctx.Done()
			return nil
		},
	}
	if err := s.Run(ctx); err != nil { // returns once ctx ends
		fmt.Println("run:", err)
	}
	// Output: relaying, token > 0: true
}
