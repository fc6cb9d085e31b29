package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/interlockraft/interlock/internal/seam"
)

// GoInterval is a drop-in for gointerlock's GoInterval: keep Name, Interval
// and Arg, and replace the Redis fields with Cluster: node.
//
// As with gointerlock, no run comes earlier than one Interval after Run is
// called. Without a Cluster, runs come at Run's start + k×Interval (k ≥ 1).
// gointerlock sets its next run to now+Interval after each run, so its
// phase drifts by the job's duration; here it does not, and a tick that
// comes while the previous run is still going is skipped. With a Cluster,
// runs come on ticks aligned to the Unix epoch, so replicas agree on them
// whenever they started; the first is the first tick at least one Interval
// after Run was called.
//
// Unlike gointerlock, each tick runs exactly once across the replicas, a
// run that is still going makes the next tick skip rather than overlap, a
// panic in the job is recovered, and no cluster error ever exits the
// process.
//
// A GoInterval must not be changed while Run runs. Run may be called again
// after it returned.
type GoInterval struct {
	// Name identifies the job across replicas. Required with a Cluster;
	// without one it may be empty, as gointerlock's local mode.
	Name string
	// Interval is the time between runs. Required, > 0.
	Interval time.Duration
	// Arg is the function to run, as in gointerlock. Set exactly one of
	// Arg and Func.
	Arg func()
	// Func is the function to run when it needs the run's context (ended
	// when Run's ctx ends, the node shuts down or the run lease is lost)
	// or its fencing token: pass run.Token to the resource the job writes
	// to. A returned error is logged at Warn; it does not stop the
	// schedule. Set exactly one of Arg and Func. Without a Cluster,
	// run.Tick is k for the run at Run's start + k×Interval and run.Token
	// is zero.
	Func Func
	// Cluster is this replica's *cluster.Node, or a schedulertest fake in
	// tests. Nil runs every tick locally.
	Cluster Cluster
}

// Run runs the job until ctx ends or the Cluster node shuts down, then
// returns nil. It returns an error at once, wrapping ErrInvalidJob and
// naming the field, for invalid input: Interval ≤ 0, neither or both of Arg
// and Func set, or an empty Name with a Cluster. It also returns at once an
// error wrapping ErrDuplicateJob if another GoInterval or Scheduler running
// on the same Cluster node already schedules Name: two of them would run
// every tick twice on that node.
func (g *GoInterval) Run(ctx context.Context) error {
	start := time.Now()
	if err := g.validate(); err != nil {
		return err
	}
	j := Job{Name: g.Name, Interval: g.Interval, Func: g.Func}
	if arg := g.Arg; arg != nil {
		j.Func = func(context.Context, Run) error {
			arg()
			return nil
		}
	}
	if !g.clustered() {
		j.origin = start
	} else {
		j.notBefore = start.Add(g.Interval)
	}
	s := newFromOptions(Options{Cluster: g.Cluster}, "GoInterval.Cluster")
	if err := s.Add(j); err != nil {
		return err
	}
	return s.Run(ctx)
}

// validate names the first unusable field, in gointerlock's order.
func (g *GoInterval) validate() error {
	switch {
	case g.Interval == 0:
		return fmt.Errorf("%w %q: GoInterval.Interval is missing (zero); set it to the time between runs, such as 10*time.Second", ErrInvalidJob, g.Name)
	case g.Interval < 0:
		return fmt.Errorf("%w %q: GoInterval.Interval is %s; it must be greater than zero, such as 10*time.Second", ErrInvalidJob, g.Name, g.Interval)
	case g.Arg == nil && g.Func == nil:
		return fmt.Errorf("%w %q: GoInterval.Arg and GoInterval.Func are both nil; set Arg (or Func) to the function to run", ErrInvalidJob, g.Name)
	case g.Arg != nil && g.Func != nil:
		return fmt.Errorf("%w %q: GoInterval.Arg and GoInterval.Func are both set; set only one of them", ErrInvalidJob, g.Name)
	case g.clustered() && g.Name == "":
		return fmt.Errorf("%w: GoInterval.Name is empty with a Cluster; give the job a Name that is the same on every replica", ErrInvalidJob)
	}
	return nil
}

// clustered reports whether Cluster names a node. A nil *cluster.Node held
// in the interface counts as no Cluster, as Options.Cluster treats it: the
// gointerlock habit of passing a possibly-nil client must not switch modes.
func (g *GoInterval) clustered() bool {
	if g.Cluster == nil {
		return false
	}
	c, ok := seam.Of(g.Cluster)
	return !ok || c != nil
}
