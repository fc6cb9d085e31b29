// Package seam is the plumbing between the scheduler and a cluster node:
// the operations a Scheduler needs to claim ticks, register jobs and keep
// run leases, which applications must not call because they can break the
// state machine's invariants.
//
// The public types stay clean: scheduler.Options.Cluster is a small
// interface that *cluster.Node and schedulertest's fake satisfy, and the
// scheduler turns it into a Coordinator with Of. Each package whose type can
// stand behind that interface registers, from an init function, a hook with
// Provide that recognises its own type and returns an unexported adapter.
// The hooks are keyed by type, not by value, so nothing is kept per node.
package seam

import (
	"context"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/fsm"
	"github.com/interlockraft/interlock/internal/runreg"
)

// Coordinator is what the scheduler needs from a cluster node. All
// methods are safe for concurrent use.
type Coordinator interface {
	// Name is the node's name, the holder named in its grants.
	Name() string
	// Logger is the node's logger, the Scheduler's default.
	Logger() hclog.Logger
	// Claim asks the cluster to grant this node the given (job, instant)
	// pairs in one entry and returns one Outcome per claim. An error means
	// the outcome is unknown: the entry may still have been committed.
	// anyOrder lets a claim be granted after a later instant of its job
	// (fsm.CommandClaimAnyOrder), once every server speaks that protocol.
	Claim(ctx context.Context, claims []fsm.Claim, anyOrder bool) (*fsm.ClaimResult, error)
	// Register records that this node runs the add jobs and no longer
	// runs the remove jobs.
	Register(ctx context.Context, add, remove []string) error
	// Candidates returns the sorted names of the live nodes that
	// registered job, from local state. It is called for every tick of
	// every job, so it may return a slice it shares: callers must not
	// modify it.
	Candidates(job string) []string
	// LastGrant returns the latest grant of job as this node knows it.
	LastGrant(job string) (fsm.JobState, bool)
}

// RunLeaser is implemented by Coordinators that keep run leases, as a real
// node does. With one, a SkipIfRunning job's tick is granted only while no
// other run of the job holds its lease, on any node.
type RunLeaser interface {
	// UpdateRuns renews the leases of renew and ends those of done, and
	// returns, in renew's order, whether each lease was still held.
	UpdateRuns(ctx context.Context, renew, done []fsm.RunRef) ([]bool, error)
}

// RunReporter is implemented by RunLeasers that also keep the replicated
// run history, as a real node does.
type RunReporter interface {
	// ReportRuns is UpdateRuns that also adds finished runs to their
	// jobs' histories, in the same entry.
	ReportRuns(ctx context.Context, renew, done []fsm.RunRef, finished []fsm.Finished) ([]bool, error)
}

// Controller is implemented by Coordinators that keep the replicated job
// state: pause, run-now requests and history. Reads come from the node's
// local state machine, which may lag the leader's by a few milliseconds.
type Controller interface {
	// SetPaused pauses (true) or resumes a job cluster-wide.
	SetPaused(ctx context.Context, job string, paused bool) error
	// RunNow records a request for one extra run of job.
	RunNow(ctx context.Context, job string) (*fsm.RunNowResult, error)
	// Paused reports whether job is paused.
	Paused(job string) bool
	// RunNowRequests returns the pending run-now requests, by job.
	RunNowRequests() map[string]fsm.RunNowRequest
	// RunNowChanged returns a channel closed when a run-now request is
	// next recorded; it is taken before RunNowRequests is read.
	RunNowChanged() <-chan struct{}
	// History returns job's finished runs, oldest first.
	History(job string) []fsm.HistoryEntry
}

// Tagger is implemented by Coordinators whose node advertises tags. A job
// that requires tags is registered and claimed only by nodes whose tags
// include them.
type Tagger interface {
	// Tags returns the node's tags. The map must not be modified.
	Tags() map[string]string
}

// LocalRunner is implemented by Coordinators that keep one registry of runs
// for their whole node, as a real node does. Every Scheduler of the node
// shares it, so a job name is scheduled by one Scheduler at a time, a (job,
// instant) runs at most once on the node, and the node can stop the runs
// before it leaves.
type LocalRunner interface {
	LocalRuns() *runreg.Registry
}

// Hook recognises values of one package's type. It returns ok false for a
// value of any other type, and a nil Coordinator with ok true for a nil
// pointer of its own type, which the scheduler treats as no cluster.
type Hook func(x any) (c Coordinator, ok bool)

var (
	mu    sync.RWMutex
	hooks []Hook
)

// Provide registers a hook. Packages call it from an init function, once.
// Safe for concurrent use.
func Provide(h Hook) {
	mu.Lock()
	defer mu.Unlock()
	hooks = append(hooks, h)
}

// ProvideFor registers the hook for pointers to T: wrap turns a non-nil
// *T into its Coordinator, and a nil *T means no cluster. Packages call it
// from an init function, once. Safe for concurrent use.
func ProvideFor[T any](wrap func(*T) Coordinator) {
	Provide(func(x any) (Coordinator, bool) {
		p, ok := x.(*T)
		switch {
		case !ok:
			return nil, false
		case p == nil:
			return nil, true
		}
		return wrap(p), true
	})
}

// Of returns the Coordinator behind x, asking each registered hook in
// turn. It returns ok false when no hook knows x's type. Safe for
// concurrent use.
func Of(x any) (Coordinator, bool) {
	mu.RLock()
	defer mu.RUnlock()
	for _, h := range hooks {
		if c, ok := h(x); ok {
			return c, true
		}
	}
	return nil, false
}
