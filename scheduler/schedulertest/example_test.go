package schedulertest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/scheduler"
	"github.com/interlockraft/interlock/scheduler/schedulertest"
)

// A test of a job runs it on a fake cluster instead of a real node. Here
// another replica wins the first tick, and this node runs the next ones,
// each with a fencing token above the last.
func ExampleNewCluster() {
	c := schedulertest.NewCluster("node-a", schedulertest.WithLogger(hclog.NewNullLogger()))
	c.GrantTo("report", "node-b", 1)

	s := scheduler.New(scheduler.Options{Cluster: c})
	err := s.Add(scheduler.Job{Name: "report", Interval: 10 * time.Millisecond, Func: func(ctx context.Context, r scheduler.Run) error {
		return nil // the job under test; r.Token fences its writes
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	grants, err := c.WaitGrants(wait, 3)
	cancel()
	if err := <-done; err != nil {
		fmt.Println(err)
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	for i, g := range grants[:3] {
		fmt.Printf("tick %d granted to %s, token above the last: %t\n", i+1, g.Node, i == 0 || g.Token > grants[i-1].Token)
	}
	// Output:
	// tick 1 granted to node-b, token above the last: true
	// tick 2 granted to node-a, token above the last: true
	// tick 3 granted to node-a, token above the last: true
}
