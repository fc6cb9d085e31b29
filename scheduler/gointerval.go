package scheduler

import (
	"context"
	"fmt"
	"time"
)

// GoInterval is a drop-in for gointerlock's GoInterval: keep Name, Interval
// and Arg, and replace the Redis connection with a cluster node.
//
// Unlike gointerlock, ticks are aligned to the Unix epoch (so replicas agree
// on them whenever they started), each tick runs exactly once across the
// replicas, a run that is still going makes the next tick skip rather than
// overlap, a panic in Arg is recovered, and no cluster error ever exits the
// process.
type GoInterval struct {
	// Name identifies the job across replicas. Required with a Cluster.
	Name string
	// Interval is the time between runs. Required, > 0.
	Interval time.Duration
	// Arg is the function to run. Required.
	Arg func()
	// Cluster is this replica's *cluster.Node, or a schedulertest fake in
	// tests. Nil runs every tick locally.
	Cluster Cluster
}

// Run runs the job until ctx ends or the Cluster node shuts down, then
// returns nil. It returns an error at once, naming the field, for invalid
// input: Interval ≤ 0, Arg nil, or an empty Name with a Cluster. It also
// returns at once an error wrapping ErrDuplicateJob if another GoInterval
// or Scheduler running on the same Cluster node already schedules Name:
// two of them would run every tick twice on that node.
func (g *GoInterval) Run(ctx context.Context) error {
	switch {
	case g.Interval <= 0:
		return fmt.Errorf("%w %q: GoInterval.Interval is %s; it must be greater than zero", ErrInvalidJob, g.Name, g.Interval)
	case g.Arg == nil:
		return fmt.Errorf("%w %q: GoInterval.Arg is nil; set it to the function to run", ErrInvalidJob, g.Name)
	case g.Cluster != nil && g.Name == "":
		return fmt.Errorf("%w: GoInterval.Name is empty with a Cluster; give the job a Name that is the same on every replica", ErrInvalidJob)
	}
	s := newFromOptions(Options{Cluster: g.Cluster}, "GoInterval.Cluster")
	arg := g.Arg
	if err := s.Add(Job{Name: g.Name, Interval: g.Interval, Func: func(context.Context, Run) error {
		arg()
		return nil
	}}); err != nil {
		return err
	}
	return s.Run(ctx)
}
