package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/fsm"
	"github.com/interlockraft/interlock/internal/runreg"
	"github.com/interlockraft/interlock/internal/seam"
	"github.com/interlockraft/interlock/internal/slogbridge"
)

// Cluster is the node a Scheduler coordinates its ticks through: a
// *cluster.Node in production, or a *schedulertest.Cluster in tests of
// jobs. The scheduler reaches the node's plumbing (claims, registrations,
// run leases) through an internal seam that those two types provide, so a
// value of any other type is refused by Add and Run.
type Cluster interface {
	// Name is the node's name, reported in Run.Node.
	Name() string
}

// Options configures a Scheduler.
type Options struct {
	// Cluster, if set, makes every job run once per tick across all
	// replicas that add a job of the same Name: this replica's
	// *cluster.Node, or a *schedulertest.Cluster in tests. Nil (or a nil
	// *cluster.Node) runs every tick locally.
	Cluster Cluster
	// Logger receives the scheduler's logs, such as recovered panics and
	// job errors. Nil means the cluster node's logger, or without a
	// Cluster an hclog logger at Info on stderr (as cluster.Config's
	// default), so a local scheduler never swallows a panic silently. Pass
	// hclog.NewNullLogger() to silence it.
	Logger hclog.Logger
	// Slog, if set and Logger is nil, receives the scheduler's logs
	// instead, for programs that log with log/slog: the key/value pairs
	// arrive as attributes and hclog's Trace as slog.LevelDebug-4, as with
	// cluster.Config.Slog.
	Slog *slog.Logger
	// OnError, if set, is called with every error the scheduler hits, as
	// well as logging it: a run that returned an error (the job's own
	// error, wrapped with the job, tick and token) or panicked (wrapping
	// ErrPanic), claims that got no answer (wrapping ErrClaimFailed),
	// ticks that ran on no node (wrapping ErrMissed), and failures to
	// register jobs with the cluster (job is "" then, as one
	// registration covers many jobs; it is retried). It is called from the
	// scheduler's goroutines, possibly from several at once, and must
	// return soon: a run's call delays the job's next tick if the job
	// skips ticks while running. It may call the Scheduler's methods.
	OnError func(job string, err error)
	// Hooks are called as jobs start, finish, skip ticks and miss them;
	// see Hooks for when and on which goroutine.
	Hooks Hooks
	// Clock is the time source of the scheduler's ticks. Nil means the
	// machine's clock. Tests pass schedulertest.NewClock to play long
	// schedules in milliseconds; see Clock for what it does not cover.
	Clock Clock
	// Registerer, if set, receives the jobs' Prometheus metrics (the
	// interlock_job_* series, labelled by job). Several Schedulers may
	// share one registry; a registry keeps the Schedulers registered with
	// it. Nil registers nothing.
	Registerer prometheus.Registerer
}

// Stats counts what happened to a job's ticks on this node, since the job
// was added to the Scheduler.
type Stats struct {
	// Runs is how many runs started here.
	Runs uint64
	// Errors is how many runs here returned an error.
	Errors uint64
	// Panics is how many runs here panicked (and were recovered). A run
	// that panicked is not also counted in Errors.
	Panics uint64
	// Retries is how many attempts after the first started here (see
	// Job.Retries). Errors counts a run once, if its last attempt failed.
	Retries uint64
	// Skipped is how many ticks this node did not claim because the job
	// was still running here.
	Skipped uint64
	// ClaimFailures is how many claims could not reach a committed answer
	// before their deadline, for example while the cluster had no quorum:
	// those ticks ran nowhere, unless another node claimed them.
	ClaimFailures uint64
	// Refused is how many claims the cluster refused for a reason on this
	// node's side: the tick expired before it was granted, a later tick
	// of the job was granted first (superseded), or the claim was early
	// (this node's clock runs ahead of the leader's) or invalid. A tick
	// that another node holds is not counted.
	Refused uint64
	// Missed is how many ticks this node saw pass with no run on any node:
	// with a cluster, instants after the job's last grant whose start
	// deadline passed, as seen when this node starts scheduling the job or
	// its loop falls behind; without one, ticks its loop fell behind on.
	// Each is also reported to Options.OnError, wrapped in ErrMissed. A
	// claim that got no answer before its deadline counts here as well as
	// in ClaimFailures, and one refused as expired (its entry committed
	// after the deadline) or superseded as well as in Refused, unless
	// another node holds its instant. Each instant counts once. Each count
	// also goes to Hooks.OnMissed.
	Missed uint64
	// LastRun is when the latest run here started; zero if none did.
	LastRun time.Time
	// LastError is the error of the latest run here that returned one or
	// panicked (a panic as an error wrapping ErrPanic); nil if none did.
	LastError error
}

// Scheduler runs many jobs. Add and Remove are safe to call concurrently
// with Run and with each other.
type Scheduler struct {
	coord seam.Coordinator
	// ctl is coord's replicated job control, if it has one.
	ctl seam.Controller
	// err, if set, is why Options could not be used; Add and Run return it.
	err     error
	node    string
	logger  hclog.Logger
	onError func(job string, err error)
	hooks   Hooks
	// notes calls OnSkip and OnMissed off the scheduler's locks.
	notes notifier
	clock Clock

	mu    sync.Mutex
	jobs  map[string]*jobState
	queue eventQueue
	// due is the loop's buffer of due events, reused every pass.
	due     []event
	running bool
	// stopping is set once Run stops starting work, so Add and Remove no
	// longer start registration goroutines that Run would not wait for.
	stopping bool
	runCtx   context.Context
	wake     chan struct{}

	// keeper holds run leases when the coordinator supports them.
	keeper *leaseKeeper

	// reg is the node's registry of runs, or this Scheduler's own without
	// one; owner holds this Scheduler's job names in it while Run runs.
	reg   *runreg.Registry
	owner *runreg.Owner

	runs sync.WaitGroup

	// metrics is nil without Options.Registerer (metrics.go).
	metrics *schedCollector

	// claimTime estimates, in nanoseconds, how long this node's claims
	// take to be answered; ticks are claimed a few times that ahead of
	// their start (lead.go).
	claimTime atomic.Int64
	// placedFor is the claim time estimate the queued ticks were placed
	// for, or a lower one it has decayed to since. Guarded by mu.
	placedFor int64
	// leadOf is the lead chosen for each upcoming instant, and
	// leadPruneAt the size at which it is next pruned (lead.go). Guarded
	// by mu.
	leadOf      map[int64]time.Duration
	leadPruneAt int
}

type jobState struct {
	job     Job
	removed atomic.Bool
	active  atomic.Int32

	runs, errors, panics, skipped, claimFailures, refused atomic.Uint64
	// retries counts attempts after the first (Stats.Retries), missed
	// the ticks that ran nowhere (Stats.Missed).
	retries, missed atomic.Uint64

	// missedUpTo is the newest instant counted as missed, so an instant is
	// counted once; checkedUpTo the newest a misfire check counted, and
	// lostAt the latest instants counted from lost claims (misfire.go).
	// Guarded by the Scheduler's mu.
	missedUpTo, checkedUpTo time.Time
	lostAt                  []int64
	// gap is how far the queued tick's instant is from the job's instant
	// before it, zero if unknown; it bounds the tick's lead (inOrder).
	// Guarded by the Scheduler's mu.
	gap time.Duration

	// lastMu guards lastRun and lastError, reported as Stats.LastRun and
	// Stats.LastError.
	lastMu    sync.Mutex
	lastRun   time.Time
	lastError error
	// warnedAt is when a refusal of this job was last logged at Warn, in
	// Unix nanoseconds, so a refusal that repeats every tick is logged once
	// per refusalWarnEvery.
	warnedAt atomic.Int64
}

// New returns a scheduler with no jobs.
// An Options.Cluster that is not one of the types Cluster names makes Add
// and Run return an error wrapping ErrInvalidCluster.
func New(opts Options) *Scheduler { return newFromOptions(opts, "Options.Cluster") }

// newFromOptions is New, naming the field Cluster came from in its error.
func newFromOptions(opts Options, field string) *Scheduler {
	var coord seam.Coordinator
	var err error
	logger := opts.Logger
	if logger == nil && opts.Slog != nil {
		logger = slogbridge.New(opts.Slog).Named("interlock")
	}
	if opts.Cluster != nil {
		c, ok := seam.Of(opts.Cluster)
		switch {
		case !ok:
			err = fmt.Errorf("%w: %s: %T is not a *cluster.Node or a *schedulertest.Cluster; pass the node cluster.Start returned, or schedulertest.NewCluster in tests", ErrInvalidCluster, field, opts.Cluster)
		case c != nil:
			coord = c
			if logger == nil {
				logger = c.Logger()
			}
		}
	}
	if logger == nil {
		// Output is named, not left to hclog's default, so it is the
		// os.Stderr of the moment New runs.
		logger = hclog.New(&hclog.LoggerOptions{Name: "interlock", Level: hclog.Info, Output: os.Stderr})
	}
	s := newScheduler(coord, logger)
	s.err = err
	s.onError = opts.OnError
	s.hooks = opts.Hooks
	if opts.Clock != nil {
		s.clock = opts.Clock
	}
	s.registerMetrics(opts.Registerer)
	return s
}

// report hands an error to Options.OnError, if set.
func (s *Scheduler) report(job string, err error) {
	if s.onError != nil {
		s.onError(job, err)
	}
}

func newScheduler(coord seam.Coordinator, logger hclog.Logger) *Scheduler {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &Scheduler{
		coord:  coord,
		logger: logger.Named("scheduler"),
		jobs:   make(map[string]*jobState),
		wake:   make(chan struct{}, 1),
		clock:  realClock{},
	}
	if coord != nil {
		s.node = coord.Name()
		s.ctl, _ = coord.(seam.Controller)
		if rl, ok := coord.(seam.RunLeaser); ok {
			s.keeper = newLeaseKeeper(rl, s.logger)
		}
		if lr, ok := coord.(seam.LocalRunner); ok {
			s.reg = lr.LocalRuns()
		}
	}
	if s.reg == nil {
		s.reg = runreg.New()
	}
	return s
}

// Add adds a job. It returns an error naming the field at fault for an
// invalid job, and ErrDuplicateJob for a Name already added to this
// Scheduler or, while Run runs, scheduled by another Scheduler running on
// the same node.
func (s *Scheduler) Add(j Job) error {
	if s.err != nil {
		return s.err
	}
	j, err := j.normalize(s.coord != nil, s.clock.Now())
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.jobs[j.Name]; ok {
		return fmt.Errorf("%w: %q was already added to this Scheduler", ErrDuplicateJob, j.Name)
	}
	if s.owner != nil {
		if err := s.hold(s.owner, j.Name, s.eligible(j)); err != nil {
			return err
		}
	}
	js := &jobState{job: j}
	s.jobs[j.Name] = js
	if s.running {
		s.scheduleNextLocked(js, s.clock.Now())
		s.poke()
		if s.coord != nil && !s.stopping {
			ctx := s.runCtx
			s.runs.Add(1)
			go func() {
				defer s.runs.Done()
				s.register(ctx, []string{j.Name})
			}()
		}
	}
	return nil
}

// removeTimeout bounds how long Remove waits for the cluster to learn
// that this node no longer runs the job.
const removeTimeout = 2 * time.Second

// Remove stops scheduling a job, and frees its Name for another Scheduler
// of the node. A run in progress finishes; the node still never runs the
// same (job, instant) twice.
//
// It returns an error wrapping ErrUnknownJob if no job of that name was
// added. While Run runs with a cluster, Remove also waits (at most 2s) for
// the cluster to record that this node no longer runs the job; if that
// fails, the job is removed all the same and the error says so: until this
// Scheduler's Run returns (which unregisters it again), peers may rank this
// node first for the job, so its runs start up to FallbackDelay late.
func (s *Scheduler) Remove(name string) error {
	s.mu.Lock()
	js, ok := s.jobs[name]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("%w: %q was not added to this Scheduler (or was removed already)", ErrUnknownJob, name)
	}
	delete(s.jobs, name)
	if s.owner != nil {
		s.owner.Free(name)
	}
	deregister := s.running && s.coord != nil && !s.stopping
	if deregister {
		// Counted, so Run does not return while this call still uses the
		// coordinator.
		s.runs.Add(1)
	}
	s.mu.Unlock()
	js.removed.Store(true)
	if !deregister {
		return nil
	}
	defer s.runs.Done()
	// Stop peers from ranking this node first for a job it dropped.
	ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
	defer cancel()
	if err := s.coord.Register(ctx, nil, []string{name}); err != nil {
		s.logger.Debug("could not unregister removed job", "job", name, "error", err)
		return fmt.Errorf("scheduler: job %q removed, but the cluster did not record it within %s: %w; peers may start its runs up to FallbackDelay late until Run returns", name, removeTimeout, err)
	}
	return nil
}

// Stats returns counters per job name.
func (s *Scheduler) Stats() map[string]Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Stats, len(s.jobs))
	for name, js := range s.jobs {
		js.lastMu.Lock()
		out[name] = Stats{
			Runs:          js.runs.Load(),
			Errors:        js.errors.Load(),
			Panics:        js.panics.Load(),
			Retries:       js.retries.Load(),
			Skipped:       js.skipped.Load(),
			ClaimFailures: js.claimFailures.Load(),
			Refused:       js.refused.Load(),
			Missed:        js.missed.Load(),
			LastRun:       js.lastRun,
			LastError:     js.lastError,
		}
		js.lastMu.Unlock()
	}
	return out
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run schedules the jobs until ctx ends or the cluster node shuts down,
// then waits for runs in progress (whose ctx is cancelled) and returns nil.
// Errors met on the way (job errors, panics, failed claims, failed
// registrations) do not stop it: they are logged, counted in Stats and
// passed to Options.OnError.
// With a cluster it first registers the jobs, and unregisters them on the
// way out.
//
// While Run runs, this Scheduler holds its job names on its node: Run
// returns at once an error wrapping ErrDuplicateJob if another Scheduler
// (or GoInterval) running on the same node already schedules one of them,
// and one wrapping cluster.ErrShutdown if the node is shutting down. The
// names are free again when Run returns.
func (s *Scheduler) Run(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("scheduler: Run called twice")
	}
	names := make([]string, 0, len(s.jobs))
	for name := range s.jobs {
		names = append(names, name)
	}
	slices.Sort(names)
	owner, err := s.join(cancel, names)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	defer owner.Leave()
	s.owner = owner
	s.running = true
	s.stopping = false
	now := s.clock.Now()
	for _, js := range s.jobs {
		s.scheduleNextLocked(js, now)
	}
	s.runCtx = runCtx
	s.mu.Unlock()
	var keeperDone chan struct{}
	keeperCtx, stopKeeper := context.WithCancel(context.Background())
	defer stopKeeper()
	if s.keeper != nil {
		keeperDone = make(chan struct{})
		go func() {
			defer close(keeperDone)
			s.keeper.run(keeperCtx)
		}()
	}
	if s.coord != nil {
		s.runs.Add(1)
		go func() {
			defer s.runs.Done()
			s.register(runCtx, names)
		}()
	}
	if ctl, ok := s.coord.(seam.Controller); ok {
		s.runs.Add(1)
		go func() {
			defer s.runs.Done()
			s.watchRunNow(runCtx, ctl)
		}()
	}
	s.loop(runCtx)
	cancel()
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.runs.Wait()
	s.notes.wait()
	if s.keeper != nil {
		stopKeeper()
		<-keeperDone
		fctx, fcancel := context.WithTimeout(context.Background(), 2*time.Second)
		s.keeper.flush(fctx)
		fcancel()
	}
	if s.coord != nil {
		// Unregister what this Run registered, including jobs removed since,
		// and any job added since. A new slice: the coordinator may have
		// kept the one given to register.
		s.mu.Lock()
		remove := slices.Clone(names)
		registered := make(map[string]bool, len(names))
		for _, name := range names {
			registered[name] = true
		}
		for name := range s.jobs {
			if !registered[name] {
				remove = append(remove, name)
			}
		}
		s.mu.Unlock()
		uctx, ucancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := s.coord.Register(uctx, nil, remove); err != nil {
			s.logger.Debug("could not unregister jobs", "error", err)
		}
		ucancel()
	}
	s.mu.Lock()
	s.running = false
	s.owner = nil
	s.queue.reset()
	s.due = nil
	s.mu.Unlock()
	return nil
}

// join adds this Run to the node's registry and holds names for it, all or
// none. stop ends the Run; the node calls it when it shuts down. The
// caller holds s.mu, and every name is in s.jobs.
func (s *Scheduler) join(stop context.CancelFunc, names []string) (*runreg.Owner, error) {
	owner, err := s.reg.Join(stop)
	if err != nil {
		return nil, s.holdError("", err)
	}
	for _, name := range names {
		if err := s.hold(owner, name, s.eligible(s.jobs[name].job)); err != nil {
			owner.Leave()
			return nil, err
		}
	}
	return owner, nil
}

// hold takes one job name on the node for owner. A job whose RequireTags
// exclude this node (listed false) is held unlisted, so the node never
// registers it with the cluster on the Scheduler's behalf
// (cluster/reregister.go). The caller holds s.mu.
func (s *Scheduler) hold(owner *runreg.Owner, name string, listed bool) error {
	hold := owner.Hold
	if !listed {
		hold = owner.HoldUnlisted
	}
	if err := hold(name); err != nil {
		return s.holdError(name, err)
	}
	return nil
}

// holdError turns a registry refusal into an error that says what to do.
func (s *Scheduler) holdError(name string, err error) error {
	where := "in this process"
	if s.node != "" {
		where = fmt.Sprintf("on node %q", s.node)
	}
	if errors.Is(err, runreg.ErrHeld) {
		return fmt.Errorf("%w: job %q is already scheduled %s by another Scheduler or GoInterval that is running; stop that one first (cancel its Run context or Remove the job), or give the jobs distinct Names", ErrDuplicateJob, name, where)
	}
	return fmt.Errorf("scheduler: cannot schedule jobs %s: %w (%v); start the Scheduler on a running node", where, cluster.ErrShutdown, err)
}

// register tells the cluster which jobs this node runs, retrying until it
// succeeds; until then this node ranks last for its jobs and claims only
// as a fallback.
func (s *Scheduler) register(ctx context.Context, names []string) {
	if names = s.eligibleNames(names); len(names) == 0 {
		return
	}
	backoff := 50 * time.Millisecond
	for {
		asked := s.clock.Now()
		err := s.coord.Register(ctx, names, nil)
		if err == nil {
			// A registration carries every job's name, as a tick's claims
			// do, and takes the same path: until a claim has been timed,
			// it is the best guess of how long one takes (lead.go), so
			// even the first tick after Run is claimed ahead.
			if s.claimTime.Load() == 0 {
				s.noteClaimTime(s.clock.Now().Sub(asked))
			}
			return
		}
		if ctx.Err() != nil {
			return // Run is stopping; nothing is lost
		}
		s.logger.Warn("could not register jobs, retrying", "error", err)
		s.report("", fmt.Errorf("scheduler: could not register jobs %q with the cluster, retrying in %s: %w", names, backoff, err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff < 2*time.Second {
			backoff *= 2
		}
	}
}

// coalesce is how close together two events must be to share a claim
// entry. Ticks of different jobs that fall on the same instant are exactly
// equal, so this only absorbs timer jitter.
const coalesce = time.Millisecond

func (s *Scheduler) loop(ctx context.Context) {
	stop := func() bool { return false }
	defer func() { stop() }()
	for {
		s.mu.Lock()
		now := s.clock.Now()
		due := s.queue.popDue(now.Add(coalesce), s.due[:0])
		var claims []pendingClaim
		for _, ev := range due {
			if ev.js.removed.Load() {
				continue
			}
			if c, ok := s.handleLocked(ctx, ev, now); ok {
				if claims == nil {
					claims = make([]pendingClaim, 0, len(due))
				}
				claims = append(claims, c)
			}
		}
		clear(due)
		s.due = due[:0]
		wait := time.Hour
		if at, ok := s.queue.next(); ok {
			wait = at.Sub(s.clock.Now())
		}
		s.mu.Unlock()

		if len(claims) > 0 {
			s.runs.Add(1)
			go func() {
				defer s.runs.Done()
				s.claim(ctx, claims)
			}()
		}
		stop()
		stop = s.clock.AfterFunc(max(wait, 0), s.poke)
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
	}
}

// scheduleNextLocked queues the job's first tick strictly after now, or,
// if the job holds its first tick back, the first tick at or after
// notBefore; with a cluster, it also queues a check for ticks missed
// since the job's last grant (see checkMissedLocked).
func (s *Scheduler) scheduleNextLocked(js *jobState, now time.Time) {
	j := js.job
	if s.coord != nil {
		s.queue.push(event{at: now, js: js, check: true})
	}
	if nb := j.notBefore; now.Before(nb) {
		now = nb.Add(-1)
	}
	s.queueTickLocked(js, time.Time{}, j.Schedule.Next(now))
}

// queueTickLocked queues the tick at instant, due at instant plus the
// job's jitter, less its lead; a zero instant (the schedule ended) queues
// nothing. prev is the job's instant before it, zero for a job's first
// tick.
func (s *Scheduler) queueTickLocked(js *jobState, prev, instant time.Time) {
	if instant.IsZero() {
		return
	}
	js.gap = 0
	if !prev.IsZero() {
		js.gap = instant.Sub(prev)
	} else if e, ok := js.job.Schedule.(EverySchedule); ok {
		js.gap = e.d
	}
	lead := inOrder(s.leadAtLocked(js.job, instant), js.gap)
	s.queue.push(event{at: startOf(js, instant).Add(-lead), js: js, inst: instant})
}

// handleLocked processes one due event. It returns a claim to send now, if
// any.
func (s *Scheduler) handleLocked(ctx context.Context, ev event, now time.Time) (pendingClaim, bool) {
	js, j := ev.js, ev.js.job
	if !s.eligible(j) {
		return pendingClaim{}, false // RequireTags exclude this node
	}
	if ev.check {
		return s.checkMissedLocked(ctx, js, time.Time{}, now)
	}
	if ev.catchUp {
		return s.catchUpLocked(ctx, js, ev.inst, now)
	}
	if ev.stale {
		return s.staleLeaseLocked(ctx, js, ev.inst, now)
	}
	inst := ev.inst
	// start is when the tick's run is due: its instant plus the job's
	// jitter. Its start deadline counts from there.
	start := startOf(js, inst)
	if !ev.fallback && !ev.atStart {
		// Queue the next tick first, so a slow claim never delays it.
		s.queueTickLocked(js, inst, s.nextTickLocked(j, inst, now))
	}
	if now.After(start.Add(j.StartDeadline)) {
		if ev.fallback {
			// This node's loop fell behind its own fallback: judged as
			// if its claim had been refused as expired.
			return s.lateFallbackLocked(ctx, js, inst, now)
		}
		// The loop fell behind this tick's deadline.
		return s.checkMissedLocked(ctx, js, inst.Add(-1), now)
	}
	tick := j.tickOf(inst)
	if s.pausedJob(j.Name) {
		// The cluster would refuse the claim; asking costs a Raft entry's
		// share for every tick of every paused job.
		return pendingClaim{}, false
	}
	if s.coord == nil {
		if s.skipIfRunningLocked(js, inst, tick) {
			return pendingClaim{}, false
		}
		s.start(ctx, js, Run{Job: j.Name, Tick: tick, At: inst})
		return pendingClaim{}, false
	}
	// A node decides whether its previous run still blocks the tick at the
	// moment it would claim, which for a node ranked after the first is
	// its fallback, not the tick's instant: its run may end in between,
	// and when the nodes ranked before it are dead or refused as busy it
	// is the last chance the tick has.
	if ev.fallback {
		// Compared by instant, the tick's identity. A later grant does
		// not stop the fallback: the cluster grants this instant after it
		// when its record shows the instant never granted, as when the
		// node ranked first stalled and the next tick's owner did not.
		if st, ok := s.coord.LastGrant(j.Name); ok {
			if granted, known := st.Granted(inst.UnixNano()); granted || !known {
				return pendingClaim{}, false // someone holds it, or may have
			}
		}
	} else if pos := positionOf(j.Name, inst.UnixNano(), s.coord.Candidates(j.Name), s.node); pos > 0 {
		delay := time.Duration(pos) * j.FallbackDelay
		if delay >= j.StartDeadline && j.Overlap == SkipIfRunning && s.holdsLatestGrant(j.Name) {
			// This node's run of the job's latest grant, or its run
			// lease, may still hold the tick: every other node's claim is
			// then refused as busy, and only this node can tell a skip
			// (the run goes on) from a miss (the run ended, its lease's
			// release not committed yet). Ranked too far back to claim,
			// it judges the tick in the last fallback slot before the
			// deadline instead.
			delay = (j.StartDeadline - 1) / j.FallbackDelay * j.FallbackDelay
		}
		if delay < j.StartDeadline {
			s.queue.push(event{at: start.Add(delay), js: js, inst: inst, fallback: true})
		}
		return pendingClaim{}, false
	}
	if j.Overlap == SkipIfRunning && js.active.Load() > 0 && now.Before(start) {
		// Claimed ahead (lead.go): whether the previous run still blocks
		// the tick is decided at its start, as without a lead.
		s.queue.push(event{at: start, js: js, inst: inst, atStart: true})
		return pendingClaim{}, false
	}
	if s.skipIfRunningLocked(js, inst, tick) {
		return pendingClaim{}, false
	}
	c := fsm.Claim{
		Job:      j.Name,
		Tick:     tick,
		At:       inst.UnixNano(),
		Deadline: min(start.Add(j.StartDeadline).UnixNano(), inst.Add(MaxStartDeadline).UnixNano()),
	}
	if s.keeper != nil && j.Overlap == SkipIfRunning {
		c.Exclusive = true
		c.LeaseTTL = int64(j.RunLease)
	}
	return pendingClaim{js: js, claim: c, again: ev.again}, true
}

// skipIfRunningLocked reports whether the job's previous run on this node
// still goes under SkipIfRunning, and if so counts the tick as skipped.
// It is asked once per tick: at the instant locally or when ranked first,
// at the fallback otherwise.
func (s *Scheduler) skipIfRunningLocked(js *jobState, inst time.Time, tick int64) bool {
	if js.job.Overlap != SkipIfRunning || js.active.Load() == 0 {
		return false
	}
	s.skipped(js, inst)
	s.logger.Debug("tick skipped: previous run still going", "job", js.job.Name, "tick", tick)
	return true
}

// nextTickLocked returns the job's tick to queue after inst. If the loop
// fell behind (a paused or starved process), it skips to the oldest tick
// whose start deadline has not passed yet, rather than replaying the
// missed ones: those whose deadline passed are counted by the misfire
// check (checkMissedLocked, from inst up to now − StartDeadline), and the
// ones after are still claimed, late. Jumping to the first tick after now
// instead lost the ticks in between silently: a process that stalled for
// 1.8 s over a 1 s job skipped a tick that could still start, and no
// check counted it. s.mu is held.
func (s *Scheduler) nextTickLocked(j Job, inst, now time.Time) time.Time {
	next := j.Schedule.Next(inst)
	if next.IsZero() || !next.Before(now) {
		return next
	}
	// Every instant at or before this one is past its deadline, whatever
	// its jitter.
	if floor := now.Add(-j.StartDeadline - j.Jitter); floor.After(inst) {
		next = j.Schedule.Next(floor)
	}
	for !next.IsZero() && now.After(next.Add(jitter(j.Name, next, j.Jitter)+j.StartDeadline)) {
		next = j.Schedule.Next(next)
	}
	return next
}

// holdsLatestGrant reports whether this node holds the job's latest grant,
// as its state machine shows it.
func (s *Scheduler) holdsLatestGrant(job string) bool {
	st, ok := s.coord.LastGrant(job)
	return ok && st.Holder == s.node
}

// pausedJob reports whether the job is paused cluster-wide, as this node's
// replicated state says. A paused job is not claimed.
func (s *Scheduler) pausedJob(name string) bool { return s.ctl != nil && s.ctl.Paused(name) }

type pendingClaim struct {
	js    *jobState
	claim fsm.Claim
	// catchUp marks a misfire catch-up claim, whose loss is not counted
	// again nor caught up again.
	catchUp bool
	// runNow marks a RunNow request's claim, whose run starts as soon as
	// it is granted, whatever the job's jitter.
	runNow bool
	// again marks a claim sent again after a refusal (event.again), which
	// a refusal as duplicate does not send a third time.
	again bool
}

// start returns when the claimed tick's run is due.
func (p pendingClaim) start() time.Time {
	at := time.Unix(0, p.claim.At)
	if p.runNow {
		return at
	}
	return startOf(p.js, at)
}

// claim sends one batch and starts the runs it was granted.
func (s *Scheduler) claim(ctx context.Context, batch []pendingClaim) {
	var deadline int64
	claims := make([]fsm.Claim, len(batch))
	// A tick's claim may be granted after a later tick of its job: claims
	// of consecutive ticks from different nodes can commit out of order,
	// and the later one's grant does not run the earlier tick. A run-now
	// request's may not: a tick granted at or after its instant stands in
	// for it (the state machine settles the request), and granting it as
	// well would run the job twice for one request.
	anyOrder := true
	for i, p := range batch {
		claims[i] = p.claim
		deadline = max(deadline, p.claim.Deadline)
		anyOrder = anyOrder && !p.runNow
	}
	// Counted on the Scheduler's clock, which a test may have set apart
	// from the machine's.
	cctx, cancel := context.WithTimeout(ctx, time.Unix(0, deadline).Sub(s.clock.Now()))
	defer cancel()
	// A granted run's lease is counted from this moment, before the leader
	// stamped the grant, so this node's deadline for it is never later
	// than the leader's.
	sent := time.Now()
	asked := s.clock.Now()
	res, err := s.coord.Claim(cctx, claims, anyOrder)
	if err != nil {
		lost := s.recoverGrants(ctx, batch, sent)
		if ctx.Err() != nil || len(lost) == 0 {
			return
		}
		missed := s.lostClaims(lost)
		if len(missed) == 0 {
			return
		}
		s.logger.Warn("claim failed; ticks missed", "claims", len(batch), "missed", len(missed), "job", missed[0].claim.Job, "tick", missed[0].claim.Tick, "error", err)
		if s.onError == nil {
			return // a batch of tens of thousands: build no errors for nobody
		}
		for _, p := range missed {
			s.report(p.claim.Job, fmt.Errorf("%w: job %q tick %d at %s: %w", ErrClaimFailed, p.claim.Job, p.claim.Tick, time.Unix(0, p.claim.At).Format(time.RFC3339Nano), err))
		}
		return
	}
	s.noteClaimTime(s.clock.Now().Sub(asked))
	var expired, superseded []pendingClaim
	granted := make([]grantedRun, 0, len(res.Outcomes))
	for i, o := range res.Outcomes {
		p := batch[i]
		if !o.Granted() {
			s.refused(p, o)
			switch {
			case o.Reason == fsm.ReasonExpired:
				expired = append(expired, p)
			case o.Reason == fsm.ReasonSuperseded && !p.runNow:
				// A later tick of the job was granted first, so this one
				// never will be. A run-now request is not a tick: the later
				// grant stands in for it.
				superseded = append(superseded, p)
			case o.Reason == fsm.ReasonBusy && !p.catchUp && s.retryAtStart(p, asked):
				// Sent ahead and refused by a run that may end before the
				// tick's start: judged again at the start (lead.go).
			case o.Reason == fsm.ReasonBusy && o.Holder == s.node && p.js.active.Load() == 0 && !p.catchUp:
				s.staleLease(p)
			case o.Reason == fsm.ReasonDuplicate && !p.again && !p.catchUp:
				// The entry granted another instant of the job, from a
				// claim merged into it before this one, and so never judged
				// this instant: one entry grants a job once, since its index
				// is the token. Nothing later will claim the instant, and no
				// check counts it, so it is claimed once more.
				s.claimAgainAtStart(p)
			}
			continue
		}
		granted = append(granted, grantedRun{js: p.js, start: p.start(), r: Run{
			Job:   p.claim.Job,
			Tick:  p.claim.Tick,
			At:    time.Unix(0, p.claim.At),
			Node:  s.node,
			Token: o.Token,
		}})
	}
	if len(expired) > 0 {
		s.expiredClaims(expired)
	}
	if len(superseded) > 0 {
		s.supersededClaims(superseded)
	}
	s.launchAt(ctx, granted, sent)
}

// refusalWarnEvery is how often, at most, a job's refusals that cannot
// resolve themselves are logged at Warn.
const refusalWarnEvery = time.Minute

// refused logs and counts a refused claim. Losing to another node (taken,
// busy, duplicate) is routine and logged at Trace. An expired claim means
// this node was too late, logged at Debug. An early or invalid claim is
// refused again on every tick until someone fixes a clock or the job, so it
// is logged at Warn, once per refusalWarnEvery per job.
func (s *Scheduler) refused(p pendingClaim, o fsm.Outcome) {
	c := p.claim
	switch o.Reason {
	case fsm.ReasonExpired:
		p.js.refused.Add(1)
		s.logger.Debug("claim refused: tick expired before it was granted", "job", c.Job, "tick", c.Tick, "at", time.Unix(0, c.At))
	case fsm.ReasonSuperseded:
		p.js.refused.Add(1)
		s.logger.Debug("claim refused: a later tick of the job was granted first", "job", c.Job, "tick", c.Tick, "at", time.Unix(0, c.At), "holder", o.Holder, "granted_at", time.Unix(0, o.At))
	case fsm.ReasonEarly, fsm.ReasonInvalid:
		p.js.refused.Add(1)
		now := time.Now().UnixNano()
		last := p.js.warnedAt.Load()
		if now-last >= int64(refusalWarnEvery) && p.js.warnedAt.CompareAndSwap(last, now) {
			hint := "this node's clock is ahead of the leader's by more than the job's StartDeadline; fix clock sync"
			if o.Reason == fsm.ReasonInvalid {
				hint = "the cluster rejects the claim itself; check the job's StartDeadline and that every replica runs a compatible version"
			}
			s.logger.Warn("claim refused; ticks will keep being refused until fixed", "job", c.Job, "tick", c.Tick, "at", time.Unix(0, c.At), "reason", o.Reason, "hint", hint)
		}
	default:
		s.metricsClaimLost(c.Job, o.Reason)
		s.logger.Trace("claim refused", "job", c.Job, "tick", c.Tick, "reason", o.Reason, "holder", o.Holder)
	}
}

// recoverWindow is how long a node whose claim got no answer watches its
// own state machine for the grant. A committed entry reaches every
// follower within a heartbeat or two.
const recoverWindow = time.Second

// recoverPoll is how long recoverGrants waits between looks at the state
// machine for n unresolved claims: 20ms, and longer for big batches, so
// that a failed batch of a whole tick does not spend the CPU the next
// tick's claims need on looking up every job fifty times a second.
func recoverPoll(n int) time.Duration {
	return min(20*time.Millisecond*time.Duration(max(1, n/1000)), 250*time.Millisecond)
}

// recoverGrants handles a claim batch that got no answer, typically a reply
// lost to a leader change or a deadline hit while the entry was committing.
// The entry may still have been committed: this node's own state machine
// applies only committed entries, so a grant it shows for this node is as
// authoritative as the reply would have been. It starts those runs and
// returns the claims that did not run here and whose instant it did not
// see granted to another node: those still unresolved after
// recoverWindow, and those a grant of a later instant hid (with an
// interval no longer than the start deadline, the next tick's claim goes
// out as this one gives up, and may commit before the first look). Each
// counts as a claim failure. sent is when the claim was sent, which a
// recovered run's lease is counted from.
func (s *Scheduler) recoverGrants(ctx context.Context, batch []pendingClaim, sent time.Time) []pendingClaim {
	pending := append([]pendingClaim(nil), batch...)
	// hidden holds the claims whose instant a later grant passed before
	// this node saw it granted: the state machine names the holder of the
	// latest grant and of the latest late one only, so whether anyone ran
	// them is unknown here.
	var hidden []pendingClaim
	deadline := time.Now().Add(recoverWindow)
	for {
		next := pending[:0]
		var found []grantedRun
		for _, p := range pending {
			// By instant, as the state machine grants: a grant the state
			// holds is this claim's only if it is for the same instant and
			// node. An instant before the latest grant that the record
			// shows never granted may still be granted out of order.
			st, ok := s.coord.LastGrant(p.claim.Job)
			if !ok {
				next = append(next, p)
				continue
			}
			holder, token, held := st.GrantOf(p.claim.At)
			granted, known := st.Granted(p.claim.At)
			switch {
			case held && holder == s.node:
				found = append(found, grantedRun{js: p.js, start: p.start(), r: Run{Job: p.claim.Job, Tick: p.claim.Tick, At: time.Unix(0, p.claim.At), Node: s.node, Token: token}})
			case held:
				// Another node's grant.
			case granted || !known:
				// Granted, or perhaps, to a node the state no longer names.
				hidden = append(hidden, p)
			default:
				next = append(next, p)
			}
		}
		// A claim sent ahead of its tick may be found granted before the
		// tick's start; launchAt waits for it.
		s.launchAt(ctx, found, sent)
		pending = next
		if len(pending) == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return append(pending, hidden...)
		case <-time.After(recoverPoll(len(pending))):
		}
	}
	pending = append(pending, hidden...)
	for _, p := range pending {
		p.js.claimFailures.Add(1)
	}
	return pending
}

// start runs a local tick (no cluster) in its own goroutine.
func (s *Scheduler) start(ctx context.Context, js *jobState, r Run) {
	s.startGrant(ctx, js, r, time.Time{})
}

// startGrant runs a tick in its own goroutine, at most once per (job,
// instant) on this node: the node's registry refuses an instant it already
// started, whichever Scheduler started it (internal/runreg), and refuses
// every run once the node is shutting down. sent is when the claim
// that granted the run was sent; a leased run's context is cancelled when
// its lease, counted from then, could not be renewed in time.
func (s *Scheduler) startGrant(ctx context.Context, js *jobState, r Run, sent time.Time) {
	if p, ok := s.prepareRun(ctx, js, r, sent); ok {
		s.launchRun(p)
	}
}

// preparedRun is a granted run whose registry entry and run lease are
// taken, waiting for its start (lead.go).
type preparedRun struct {
	js     *jobState
	r      Run
	ctx    context.Context
	cancel context.CancelFunc
	end    func()
	// ref is the run's lease, nil if it has none.
	ref *fsm.RunRef
}

// prepareRun does what startGrant does before the run's goroutine starts:
// it takes the run's place in the node's registry and, for a leased run,
// starts keeping its lease. It reports false if the registry refuses the
// run.
func (s *Scheduler) prepareRun(ctx context.Context, js *jobState, r Run, sent time.Time) (*preparedRun, bool) {
	runCtx, cancel := context.WithCancel(ctx)
	end, ok := s.reg.Begin(runreg.Run{Key: runreg.Key{Job: r.Job, At: r.At.UnixNano()}, Tick: r.Tick, Token: r.Token}, cancel)
	if !ok {
		cancel()
		s.logger.Trace("run not started: this node already started the job at this instant, or is shutting down", "job", r.Job, "tick", r.Tick, "token", r.Token)
		return nil, false
	}
	p := &preparedRun{js: js, r: r, ctx: runCtx, cancel: cancel, end: end}
	if s.keeper != nil && r.Token != 0 && js.job.Overlap == SkipIfRunning {
		p.ref = &fsm.RunRef{Job: r.Job, Tick: r.Tick}
		s.keeper.begin(*p.ref, js.job.RunLease, sent, cancel)
	}
	return p, true
}

// launchRun starts a prepared run's goroutine.
func (s *Scheduler) launchRun(p *preparedRun) {
	js, r := p.js, p.r
	js.active.Add(1)
	js.runs.Add(1)
	js.lastMu.Lock()
	js.lastRun = s.clock.Now()
	js.lastMu.Unlock()
	s.runs.Add(1)
	go func() {
		defer s.runs.Done()
		defer js.active.Add(-1)
		defer p.cancel()
		defer p.end()
		start, err := time.Now(), error(nil)
		defer func() { s.finished(p.ref, r, start, err) }()
		err = s.execute(p.ctx, js, r)
	}()
}

// dropRun gives up a prepared run that never started: it frees its place
// in the registry and ends its lease, so the job's next tick is not
// refused as busy.
func (s *Scheduler) dropRun(p *preparedRun) {
	p.cancel()
	p.end()
	if p.ref != nil {
		s.keeper.end(*p.ref)
	}
	s.logger.Debug("granted run not started: the scheduler stopped before its instant", "job", p.r.Job, "tick", p.r.Tick, "token", p.r.Token)
}

// setLastError records err as the job's LastError.
func (js *jobState) setLastError(err error) {
	js.lastMu.Lock()
	js.lastError = err
	js.lastMu.Unlock()
}

// event is a due moment for a job: its tick, a fallback attempt to claim a
// tick the preferred replica has not claimed, or a check for missed ticks.
type event struct {
	at time.Time
	js *jobState
	// inst is the tick's scheduled instant, its identity.
	inst     time.Time
	fallback bool
	check    bool
	// catchUp is a RunOnce catch-up claim for inst, whose own claim was
	// lost (misfire.go).
	catchUp bool
	// stale checks, at inst's start deadline, whether the tick that this
	// node's stale run lease kept from being granted ran anywhere
	// (misfire.go).
	stale bool
	// atStart is a tick whose claim, due ahead of its start (lead.go),
	// was put off to the start because the job's previous run was still
	// going; its next tick is already queued.
	atStart bool
	// again marks an atStart tick whose claim was refused once already
	// (claimAgainAtStart).
	again bool
}
