// Command basic shows the smallest use of Interlock: a local interval task,
// with no cluster, written as scheduler.GoInterval, the drop-in for
// gointerlock's type of the same name. The task prints the time every
// second.
//
// With Cluster left nil, every tick runs in this process. To run the same
// job once per tick across several replicas, start a cluster.Node in each
// replica and set GoInterval.Cluster to it; Name, Interval and Arg stay the
// same (see examples/cache and examples/three-node).
//
// As with gointerlock, the first run comes one interval after Run is
// called, then one every interval. (With a Cluster, ticks are aligned to
// the Unix epoch instead, so that replicas agree on them.)
//
// Run it until Ctrl-C:
//
//	go run ./examples/basic
//
// or for a fixed time:
//
//	go run ./examples/basic -for 5s
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/interlockraft/interlock/scheduler"
)

func myJob() {
	fmt.Println(time.Now().Format("15:04:05.000"), "- called")
}

func main() {
	runFor := flag.Duration("for", 0, "stop after this long (0 runs until SIGINT or SIGTERM)")
	interval := flag.Duration("interval", time.Second, "time between runs")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *runFor > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *runFor)
		defer cancel()
	}

	job := scheduler.GoInterval{
		Name:     "MyTestJob",
		Interval: *interval,
		Arg:      myJob,
		// Cluster: node, // set to a *cluster.Node to run once per tick across replicas
	}
	// Run blocks until ctx ends and returns an error only for invalid input.
	if err := job.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "basic:", err)
		os.Exit(1)
	}
	fmt.Println("stopped")
}
