package scheduler_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/scheduler"
)

// New and Add build a Scheduler; Run runs its jobs until ctx ends. With
// Options.Cluster set to this replica's node, each tick of "reindex" runs
// on exactly one replica, and run.Token is its fencing token.
func ExampleNew() {
	ctx, cancel := context.WithCancel(context.Background())
	s := scheduler.New(scheduler.Options{Logger: hclog.NewNullLogger()})
	err := s.Add(scheduler.Job{
		Name:     "reindex",
		Interval: 20 * time.Millisecond,
		Func: func(ctx context.Context, run scheduler.Run) error {
			fmt.Println("run of", run.Job)
			cancel() // one run is enough for the example
			return nil
		},
	})
	if err != nil {
		fmt.Println("add:", err) // names the bad field
		return
	}
	if err := s.Run(ctx); err != nil { // returns once ctx ends
		fmt.Println("run:", err)
	}
	fmt.Println("runs:", s.Stats()["reindex"].Runs)
	// Output:
	// run of reindex
	// runs: 1
}

// GoInterval is gointerlock's type: set Name, Interval and Arg, and
// Cluster to this replica's node (nil, as here, runs locally). The first
// run comes one Interval after Run is called, then one every Interval.
func ExampleGoInterval_Run() {
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	runs := 0
	job := scheduler.GoInterval{
		Name:     "refresh-cache",
		Interval: 20 * time.Millisecond,
		Arg: func() {
			runs++ // runs never overlap: a tick that comes while one goes is skipped
			if runs == 3 {
				once.Do(cancel)
			}
		},
	}
	start := time.Now()
	if err := job.Run(ctx); err != nil { // blocks until ctx ends
		fmt.Println("run:", err)
		return
	}
	fmt.Println("runs:", runs)
	fmt.Println("at least 3 Intervals:", time.Since(start) >= 3*job.Interval)
	// Output:
	// runs: 3
	// at least 3 Intervals: true
}
