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
	// Tick is the tick's index. For a job on Interval or Every(d) (with an
	// offset o), the run is for the instant o + Tick×d after the Unix epoch;
	// for GoInterval without a Cluster, for Run's start + Tick×Interval.
	// For other schedules (Cron, At) it is At in Unix nanoseconds. At is
	// the tick's identity; Tick is kept for logs and for interval jobs.
	// A run started by RunNow has a negative Tick, the negated ID of its
	// request, and At is the request's instant.
	Tick int64
	// At is the tick's scheduled instant, its identity across the cluster.
	// With Job.Jitter the run starts up to Jitter after it.
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

// Job is a named function run on a schedule: every Interval, or at the
// instants of its Schedule.
//
// Its durations follow the rule of cluster.Config: zero means the
// documented default and a negative value is an error naming the field.
// Exactly one of Interval and Schedule must be set. The defaults that
// scale with the interval use, for a Schedule, the time between its next
// two instants (one minute for At).
type Job struct {
	// Name identifies the job across replicas: replicas that add a job
	// with the same Name share its ticks. Required with a cluster.
	Name string
	// Interval is the time between ticks, a shorthand for Schedule:
	// Every(Interval). > 0 if set.
	Interval time.Duration
	// Schedule gives the job's instants: Every, Cron or At, or any type
	// whose Next every replica computes alike. Set it or Interval.
	Schedule Schedule
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
	// Jitter, if positive, delays each tick's run by a duration in
	// [0, Jitter) derived from a hash of the job's Name and the tick's
	// instant: every replica computes the same delay, and jobs that share
	// a schedule spread over the Jitter instead of starting together. The
	// tick keeps its scheduled instant as its identity (Run.At); its start
	// deadline counts from the delayed start. At most MaxStartDeadline.
	Jitter time.Duration
	// Misfire says what happens to ticks that no node ran: while every
	// replica was down, during a restart, or while this node's process
	// was paused. Skip (the default) forgets them; RunOnce runs the newest
	// of them once, if it is at most MisfireWindow old. Either way they
	// are counted in Stats.Missed and reported to Options.OnError.
	Misfire Misfire
	// MisfireWindow is how old a missed tick may be and still get its
	// catch-up run under RunOnce. Default: the period of the schedule, at
	// most MaxStartDeadline; at most MaxStartDeadline.
	MisfireWindow time.Duration

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

// tickOf returns Run.Tick for the tick at instant.
func (j Job) tickOf(instant time.Time) int64 {
	if !j.origin.IsZero() {
		return int64(instant.Sub(j.origin) / j.Interval)
	}
	if e, ok := j.Schedule.(EverySchedule); ok {
		return e.index(instant)
	}
	return instant.UnixNano()
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

	// ErrInvalidCron means a spec given to Cron could not be parsed; the
	// message quotes the spec and names the wrong field.
	ErrInvalidCron = errors.New("scheduler: invalid cron spec")

	// ErrMissed means ticks of a job passed without a run on any node, as
	// this node knows from the cluster's last grant (or, without a
	// cluster, from its own loop): the message gives how many and the
	// newest. They are counted in Stats.Missed.
	ErrMissed = errors.New("scheduler: ticks missed")

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

// normalize checks a job and fills its defaults, Schedule among them.
// now is the Scheduler's clock, from which a Schedule's period is measured.
func (j Job) normalize(clustered bool, now time.Time) (Job, error) {
	if err := j.resolveSchedule(); err != nil {
		return j, err
	}
	interval := period(j.Schedule, now)
	switch {
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
	case j.Jitter < 0:
		return j, fmt.Errorf("%w %q: Jitter is %s; use 0 for none or a positive duration", ErrInvalidJob, j.Name, j.Jitter)
	case j.Jitter > MaxStartDeadline:
		return j, fmt.Errorf("%w %q: Jitter is %s; it must be at most MaxStartDeadline (%s)", ErrInvalidJob, j.Name, j.Jitter, MaxStartDeadline)
	case j.Misfire != Skip && j.Misfire != RunOnce:
		return j, fmt.Errorf("%w %q: Misfire is %s; use Skip or RunOnce", ErrInvalidJob, j.Name, j.Misfire)
	case j.MisfireWindow < 0:
		return j, fmt.Errorf("%w %q: MisfireWindow is %s; use 0 for the default (the schedule's period) or a positive duration", ErrInvalidJob, j.Name, j.MisfireWindow)
	case j.MisfireWindow > MaxStartDeadline:
		return j, fmt.Errorf("%w %q: MisfireWindow is %s; it must be at most MaxStartDeadline (%s), because the cluster refuses ticks older than that", ErrInvalidJob, j.Name, j.MisfireWindow, MaxStartDeadline)
	case j.StartDeadline > MaxStartDeadline:
		return j, fmt.Errorf("%w %q: StartDeadline is %s; it must be at most MaxStartDeadline (%s), because the cluster refuses ticks older than that", ErrInvalidJob, j.Name, j.StartDeadline, MaxStartDeadline)
	}
	if j.StartDeadline == 0 {
		j.StartDeadline = min(interval, MaxStartDeadline)
	}
	if j.FallbackDelay == 0 {
		j.FallbackDelay = min(interval/4, 500*time.Millisecond)
		if j.FallbackDelay <= 0 {
			j.FallbackDelay = time.Millisecond
		}
	}
	if j.RetryBackoff == 0 {
		j.RetryBackoff = defaultRetryBackoff
	}
	if j.RunLease == 0 {
		j.RunLease = min(max(2*interval, time.Second), 30*time.Second)
	}
	if j.MisfireWindow == 0 {
		j.MisfireWindow = min(interval, MaxStartDeadline)
	}
	return j, nil
}

// resolveSchedule sets Schedule from Interval, or checks the one given.
func (j *Job) resolveSchedule() error {
	switch {
	case j.Interval != 0 && j.Schedule != nil:
		return fmt.Errorf("%w %q: both Interval (%s) and Schedule (%v) are set; set only one: Interval is a shorthand for Schedule: scheduler.Every(Interval)", ErrInvalidJob, j.Name, j.Interval, j.Schedule)
	case j.Interval < 0:
		return fmt.Errorf("%w %q: Interval is %s; it must be greater than zero, such as 10*time.Second", ErrInvalidJob, j.Name, j.Interval)
	case j.Interval > 0:
		j.Schedule = Every(j.Interval)
		if !j.origin.IsZero() {
			j.Schedule = Every(j.Interval).Offset(time.Duration(j.origin.UnixNano() - TickIndex(j.Interval, j.origin)*int64(j.Interval)))
		}
		return nil
	case j.Schedule == nil:
		return fmt.Errorf("%w %q: Interval is 0 and Schedule is nil; set one of them, such as Interval: 10*time.Second or Schedule: scheduler.Every(time.Hour)", ErrInvalidJob, j.Name)
	}
	if e, ok := j.Schedule.(EverySchedule); ok {
		if err := e.validate(); err != nil {
			return fmt.Errorf("%w %q: Schedule: %w", ErrInvalidJob, j.Name, err)
		}
	}
	return nil
}
