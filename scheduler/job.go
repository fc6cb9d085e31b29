package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/interlockraft/interlock/fsm"
)

// Run is what a job function learns about its run.
type Run struct {
	// Job is the job's name.
	Job string
	// Tick is the tick's index: the run is for the instant Tick×Interval
	// after the Unix epoch. A run started by RunNow has a negative Tick,
	// the negated ID of its request, and At is the request's instant.
	Tick int64
	// At is the tick's scheduled instant.
	At time.Time
	// Node is the name of the node running it; "" without a cluster.
	Node string
	// Token is the fencing token: the Raft index of the entry that granted
	// this run. It strictly increases across the runs of a job, so a
	// resource that remembers the highest token it saw can reject writes
	// from a stale run. Zero without a cluster. Retries of a run keep its
	// Token: they run inside the same grant.
	Token uint64
	// Attempt is which call of Func this is within the run, from 1: a
	// retry after an error (see Job.Retries) has Attempt 2, then 3, and so
	// on. Zero in a hook about a tick that did not run.
	Attempt int
}

// Func is a job's body. ctx ends when the scheduler stops, when its cluster
// node shuts down, when the run's lease was lost or could not be renewed
// before it expired by the local clock, or Job.Timeout after the call. A
// returned error is logged, and retried as Job.Retries says; a panic is
// recovered and logged. Neither stops the schedule.
type Func func(ctx context.Context, run Run) error

// Overlap says what happens when a tick comes while the job's previous run
// on this node is still going.
type Overlap int

const (
	// SkipIfRunning skips the tick. It is the default.
	SkipIfRunning Overlap = iota
	// AllowOverlap starts the new run alongside the old one.
	AllowOverlap
)

// String returns the policy's name.
func (o Overlap) String() string {
	switch o {
	case SkipIfRunning:
		return "skip-if-running"
	case AllowOverlap:
		return "allow-overlap"
	default:
		return "overlap(" + strconv.Itoa(int(o)) + ")"
	}
}

// Job is a named function run every Interval.
//
// Its durations follow the rule of cluster.Config: zero means the
// documented default and a negative value is an error naming the field.
// Interval has no default: zero is an error.
type Job struct {
	// Name identifies the job across replicas: replicas that add a job
	// with the same Name share its ticks. Required with a cluster.
	Name string
	// Interval is the time between ticks. Required, > 0.
	Interval time.Duration
	// Func is the body. Required.
	Func Func
	// Overlap is the policy for a tick that comes while a run is going.
	Overlap Overlap
	// StartDeadline is how late after its instant a tick may still start.
	// A tick that cannot be granted by then is missed rather than run late.
	// At most MaxStartDeadline. Default: Interval, capped at
	// MaxStartDeadline.
	StartDeadline time.Duration
	// FallbackDelay is how long each replica after the preferred one waits
	// before claiming a tick that is still unclaimed. Default: Interval/4,
	// at most 500ms.
	FallbackDelay time.Duration
	// RunLease is the length of the run lease a clustered SkipIfRunning
	// run holds, renewed every third of it while the run goes on. While it
	// is held no other node starts the job; if the holder crashes, the job
	// is free again after at most RunLease. Default: twice the Interval,
	// between 1s and 30s.
	RunLease time.Duration
	// RequireTags, if set, limits the job to nodes whose
	// cluster.Config.Tags include every one of these key/value pairs: only
	// they register the job, rank for its ticks and claim them. A node
	// that does not match keeps the job (Jobs reports it) but never runs
	// it. Ignored without a Cluster.
	RequireTags map[string]string
	// Timeout, if set, is a deadline on each attempt's context: ctx ends
	// Timeout after Func was called, with context.DeadlineExceeded. Func
	// must watch ctx for it to take effect; the scheduler cannot stop a
	// function that ignores its context. Zero means no deadline.
	Timeout time.Duration
	// Retries is how many times, at most, a run whose Func returned an
	// error is attempted again, inside the same grant: with the same Token,
	// under the same run lease, on the same node. Attempts wait
	// RetryBackoff, then twice that, and so on, capped at one minute (or at
	// RetryBackoff if that is longer). Retries stop early when the wait
	// would reach the job's next tick, or when the run's context ends (the
	// run lease was lost, or the Scheduler is stopping): the next tick
	// starts a fresh run. A panic is not retried. Zero means none.
	Retries int
	// RetryBackoff is the wait before the first retry. Default: 1s.
	RetryBackoff time.Duration

	// origin, if set, puts the job's ticks at origin+k×Interval instead of
	// on the epoch, for GoInterval without a Cluster: gointerlock's timer
	// counts from Run's start, and a local job has no replicas that need to
	// agree on the phase. Tick k ≥ 1 is then the k-th Interval since origin.
	origin time.Time
	// notBefore, if set, holds back the job's first tick until this
	// instant, for GoInterval with a Cluster: no run comes earlier than one
	// Interval after Run started, as with gointerlock, while the ticks stay
	// on the epoch-aligned instants that every replica agrees on.
	notBefore time.Time
}

// tickAt returns the scheduled instant of the job's tick k.
func (j Job) tickAt(k int64) time.Time {
	if j.origin.IsZero() {
		return TickAt(j.Interval, k)
	}
	return j.origin.Add(time.Duration(k) * j.Interval)
}

// nextTick returns the index of the job's first tick strictly after t.
func (j Job) nextTick(t time.Time) int64 {
	if j.origin.IsZero() {
		return NextTick(j.Interval, t)
	}
	d := t.Sub(j.origin)
	if d < 0 {
		return 0
	}
	return int64(d/j.Interval) + 1
}

// MaxStartDeadline is the largest StartDeadline a job may have. The
// cluster refuses to grant a tick whose instant is older than this, which
// is what lets it forget the state of jobs that no replica runs any more.
// It is two days, so a daily job keeps the default StartDeadline of one
// interval.
const MaxStartDeadline = fsm.MaxStartDeadline

var (
	// ErrInvalidJob means a Job, GoInterval or Singleton field is unusable;
	// the message names the field and the fix.
	ErrInvalidJob = errors.New("scheduler: invalid job")

	// ErrDuplicateJob means a job with the same Name was already added to
	// this Scheduler, or is scheduled by another Scheduler (or GoInterval)
	// running on the same cluster node: at most one of them may schedule a
	// Name on a node at a time, or the node would run its ticks twice.
	ErrDuplicateJob = errors.New("scheduler: duplicate job name")

	// ErrInvalidCluster means Options.Cluster or GoInterval.Cluster holds a
	// value of a type the scheduler cannot coordinate through: it must be
	// a *cluster.Node or a *schedulertest.Cluster.
	ErrInvalidCluster = errors.New("scheduler: invalid cluster")

	// ErrPanic wraps the value a job's run panicked with, as recorded in
	// Stats.LastError. The panic was recovered; the schedule goes on.
	ErrPanic = errors.New("scheduler: job panicked")

	// ErrUnknownJob means Remove was given a Name that is not in the
	// Scheduler, or RunNow a job that no node of the cluster registered.
	ErrUnknownJob = errors.New("scheduler: no job of that name")

	// ErrClaimFailed means a claim for a tick got no committed answer
	// before the tick's StartDeadline, for example while the cluster had no
	// quorum; the tick ran nowhere unless another node claimed it.
	ErrClaimFailed = errors.New("scheduler: claim got no answer")

	// ErrNoCluster means Pause, Resume or RunNow was called on a
	// Scheduler without a Cluster: they act on the replicated job state.
	ErrNoCluster = errors.New("scheduler: no cluster")

	// ErrPaused means RunNow was refused because the job is paused; Resume
	// it first.
	ErrPaused = errors.New("scheduler: job is paused")
)

// normalize checks a job and fills its defaults.
func (j Job) normalize(clustered bool) (Job, error) {
	switch {
	case j.Interval <= 0:
		return j, fmt.Errorf("%w %q: Interval is %s; it must be greater than zero, such as 10*time.Second", ErrInvalidJob, j.Name, j.Interval)
	case j.Func == nil:
		return j, fmt.Errorf("%w %q: Func is nil; give the job a function to run", ErrInvalidJob, j.Name)
	case clustered && j.Name == "":
		return j, fmt.Errorf("%w: Name is empty; a clustered job needs a Name that is the same on every replica", ErrInvalidJob)
	case j.Overlap != SkipIfRunning && j.Overlap != AllowOverlap:
		return j, fmt.Errorf("%w %q: Overlap is %s; use SkipIfRunning or AllowOverlap", ErrInvalidJob, j.Name, j.Overlap)
	case j.StartDeadline < 0:
		return j, fmt.Errorf("%w %q: StartDeadline is %s; use 0 for the default (one Interval) or a positive duration", ErrInvalidJob, j.Name, j.StartDeadline)
	case j.FallbackDelay < 0:
		return j, fmt.Errorf("%w %q: FallbackDelay is %s; use 0 for the default (Interval/4, at most 500ms) or a positive duration", ErrInvalidJob, j.Name, j.FallbackDelay)
	case j.RunLease < 0:
		return j, fmt.Errorf("%w %q: RunLease is %s; use 0 for the default (twice the Interval, between 1s and 30s) or a positive duration", ErrInvalidJob, j.Name, j.RunLease)
	case j.Timeout < 0:
		return j, fmt.Errorf("%w %q: Timeout is %s; use 0 for no deadline or a positive duration, such as 30*time.Second", ErrInvalidJob, j.Name, j.Timeout)
	case j.Retries < 0:
		return j, fmt.Errorf("%w %q: Retries is %d; use 0 for no retries or a positive count", ErrInvalidJob, j.Name, j.Retries)
	case j.RetryBackoff < 0:
		return j, fmt.Errorf("%w %q: RetryBackoff is %s; use 0 for the default (1s) or a positive duration", ErrInvalidJob, j.Name, j.RetryBackoff)
	case j.StartDeadline > MaxStartDeadline:
		return j, fmt.Errorf("%w %q: StartDeadline is %s; it must be at most MaxStartDeadline (%s), because the cluster refuses ticks older than that", ErrInvalidJob, j.Name, j.StartDeadline, MaxStartDeadline)
	}
	if j.StartDeadline == 0 {
		j.StartDeadline = min(j.Interval, MaxStartDeadline)
	}
	if j.FallbackDelay == 0 {
		j.FallbackDelay = min(j.Interval/4, 500*time.Millisecond)
		if j.FallbackDelay <= 0 {
			j.FallbackDelay = time.Millisecond
		}
	}
	if j.RetryBackoff == 0 {
		j.RetryBackoff = defaultRetryBackoff
	}
	if j.RunLease == 0 {
		j.RunLease = min(max(2*j.Interval, time.Second), 30*time.Second)
	}
	return j, nil
}
