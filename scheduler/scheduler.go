package scheduler

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/fsm"
)

// Coordinator is what the scheduler needs from a cluster node. *cluster.Node
// implements it; unit tests use a fake.
type Coordinator interface {
	Name() string
	Claim(ctx context.Context, claims []fsm.Claim) (*fsm.ClaimResult, error)
	Register(ctx context.Context, add, remove []string) error
	Candidates(job string) []string
	LastGrant(job string) (fsm.JobState, bool)
}

// Options configures a Scheduler.
type Options struct {
	// Cluster, if set, makes every job run once per tick across all
	// replicas that add a job of the same Name. Nil runs every tick locally.
	Cluster *cluster.Node
	// Logger receives the scheduler's logs, such as recovered panics and
	// job errors. Nil means the cluster node's logger, or without a
	// Cluster an hclog logger at Info on stderr (as cluster.Config's
	// default), so a local scheduler never swallows a panic silently. Pass
	// hclog.NewNullLogger() to silence it.
	Logger hclog.Logger
}

// Stats counts what happened to a job's ticks on this node.
type Stats struct {
	// Runs is how many runs started here.
	Runs uint64
	// Skipped is how many ticks this node did not claim because the job
	// was still running here.
	Skipped uint64
	// Failed is how many claims could not reach a committed answer before
	// their deadline, for example while the cluster had no quorum.
	Failed uint64
	// Panics is how many runs panicked (and were recovered).
	Panics uint64
}

// Scheduler runs many jobs. Add and Remove are safe to call concurrently
// with Run and with each other.
type Scheduler struct {
	coord  Coordinator
	node   string
	logger hclog.Logger

	mu      sync.Mutex
	jobs    map[string]*jobState
	queue   eventQueue
	running bool
	// stopping is set once Run stops starting work, so Add and Remove no
	// longer start registration goroutines that Run would not wait for.
	stopping bool
	runCtx   context.Context
	wake     chan struct{}

	// keeper holds run leases when the coordinator supports them.
	keeper *leaseKeeper

	runs sync.WaitGroup
}

type jobState struct {
	job     Job
	removed atomic.Bool
	active  atomic.Int32
	// lastStarted is the highest tick started on this node, so a grant
	// seen twice (a retried claim) never runs twice.
	lastStarted atomic.Int64

	runs, skipped, failed, panics atomic.Uint64
}

// New returns a scheduler with no jobs.
func New(opts Options) *Scheduler {
	var coord Coordinator
	logger := opts.Logger
	if opts.Cluster != nil {
		coord = opts.Cluster
		if logger == nil {
			logger = opts.Cluster.Logger()
		}
	}
	if logger == nil {
		// Output is named, not left to hclog's default, so it is the
		// os.Stderr of the moment New runs.
		logger = hclog.New(&hclog.LoggerOptions{Name: "interlock", Level: hclog.Info, Output: os.Stderr})
	}
	return newScheduler(coord, logger)
}

func newScheduler(coord Coordinator, logger hclog.Logger) *Scheduler {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &Scheduler{
		coord:  coord,
		logger: logger.Named("scheduler"),
		jobs:   make(map[string]*jobState),
		wake:   make(chan struct{}, 1),
	}
	if coord != nil {
		s.node = coord.Name()
		if rl, ok := coord.(runLeaser); ok {
			s.keeper = newLeaseKeeper(rl, s.logger)
		}
	}
	return s
}

// Add adds a job. It returns an error naming the field at fault for an
// invalid job, and ErrDuplicateJob for a Name already added.
func (s *Scheduler) Add(j Job) error {
	j, err := j.normalize(s.coord != nil)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.jobs[j.Name]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicateJob, j.Name)
	}
	js := &jobState{job: j}
	js.lastStarted.Store(-1 << 63)
	s.jobs[j.Name] = js
	if s.running {
		s.scheduleNextLocked(js, time.Now())
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

// Remove stops scheduling a job. A run in progress finishes.
func (s *Scheduler) Remove(name string) {
	s.mu.Lock()
	js, ok := s.jobs[name]
	delete(s.jobs, name)
	if ok && s.running && s.coord != nil && !s.stopping {
		// Stop peers from ranking this node first for a job it dropped.
		s.runs.Add(1)
		go func() {
			defer s.runs.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := s.coord.Register(ctx, nil, []string{name}); err != nil {
				s.logger.Debug("could not unregister removed job", "job", name, "error", err)
			}
		}()
	}
	s.mu.Unlock()
	if ok {
		js.removed.Store(true)
	}
}

// Stats returns counters per job name.
func (s *Scheduler) Stats() map[string]Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Stats, len(s.jobs))
	for name, js := range s.jobs {
		out[name] = Stats{Runs: js.runs.Load(), Skipped: js.skipped.Load(), Failed: js.failed.Load(), Panics: js.panics.Load()}
	}
	return out
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run schedules the jobs until ctx ends, then waits for runs in progress
// (whose ctx is cancelled) and returns nil. With a cluster it first
// registers the jobs, and unregisters them on the way out.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("scheduler: Run called twice")
	}
	s.running = true
	s.stopping = false
	now := time.Now()
	names := make([]string, 0, len(s.jobs))
	for name, js := range s.jobs {
		s.scheduleNextLocked(js, now)
		names = append(names, name)
	}
	s.mu.Unlock()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
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
	s.loop(runCtx)
	cancel()
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.runs.Wait()
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
	s.queue = nil
	s.mu.Unlock()
	return nil
}

// register tells the cluster which jobs this node runs, retrying until it
// succeeds; until then this node ranks last for its jobs and claims only
// as a fallback.
func (s *Scheduler) register(ctx context.Context, names []string) {
	backoff := 50 * time.Millisecond
	for {
		err := s.coord.Register(ctx, names, nil)
		if err == nil {
			return
		}
		s.logger.Warn("could not register jobs, retrying", "error", err)
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
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		now := time.Now()
		var due []event
		for len(s.queue) > 0 && !s.queue[0].at.After(now.Add(coalesce)) {
			due = append(due, heap.Pop(&s.queue).(event))
		}
		var claims []pendingClaim
		for _, ev := range due {
			if ev.js.removed.Load() {
				continue
			}
			if c, ok := s.handleLocked(ctx, ev, now); ok {
				claims = append(claims, c)
			}
		}
		wait := time.Hour
		if len(s.queue) > 0 {
			wait = time.Until(s.queue[0].at)
		}
		s.mu.Unlock()

		if len(claims) > 0 {
			s.runs.Add(1)
			go func() {
				defer s.runs.Done()
				s.claim(ctx, claims)
			}()
		}
		timer.Reset(max(wait, 0))
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
	}
}

// scheduleNextLocked queues the job's first tick strictly after now.
func (s *Scheduler) scheduleNextLocked(js *jobState, now time.Time) {
	k := NextTick(js.job.Interval, now)
	heap.Push(&s.queue, event{at: TickAt(js.job.Interval, k), js: js, tick: k})
}

// handleLocked processes one due event. It returns a claim to send now, if
// any.
func (s *Scheduler) handleLocked(ctx context.Context, ev event, now time.Time) (pendingClaim, bool) {
	js, j := ev.js, ev.js.job
	if !ev.fallback {
		// Queue the next tick first, so a slow claim never delays it. If the
		// loop fell behind (a paused process), jump to the next future tick
		// instead of replaying the missed ones.
		next := ev.tick + 1
		if k := NextTick(j.Interval, now); k > next {
			next = k
		}
		heap.Push(&s.queue, event{at: TickAt(j.Interval, next), js: js, tick: next})
	}
	at := TickAt(j.Interval, ev.tick)
	if now.After(at.Add(j.StartDeadline)) {
		return pendingClaim{}, false
	}
	if j.Overlap == SkipIfRunning && js.active.Load() > 0 {
		if !ev.fallback {
			js.skipped.Add(1)
			s.logger.Debug("tick skipped: previous run still going", "job", j.Name, "tick", ev.tick)
		}
		return pendingClaim{}, false
	}
	if s.coord == nil {
		s.start(ctx, js, Run{Job: j.Name, Tick: ev.tick, At: at})
		return pendingClaim{}, false
	}
	if ev.fallback {
		if st, ok := s.coord.LastGrant(j.Name); ok && st.LastTick >= ev.tick {
			return pendingClaim{}, false // someone holds it
		}
	} else {
		order := rank(j.Name, ev.tick, s.coord.Candidates(j.Name))
		if pos := position(order, s.node); pos > 0 {
			delay := time.Duration(pos) * j.FallbackDelay
			if delay < j.StartDeadline {
				heap.Push(&s.queue, event{at: at.Add(delay), js: js, tick: ev.tick, fallback: true})
			}
			return pendingClaim{}, false
		}
	}
	c := fsm.Claim{
		Job:      j.Name,
		Tick:     ev.tick,
		At:       at.UnixNano(),
		Deadline: at.Add(j.StartDeadline).UnixNano(),
	}
	if s.keeper != nil && j.Overlap == SkipIfRunning {
		c.Exclusive = true
		c.LeaseTTL = int64(j.RunLease)
	}
	return pendingClaim{js: js, claim: c}, true
}

type pendingClaim struct {
	js    *jobState
	claim fsm.Claim
}

// claim sends one batch and starts the runs it was granted.
func (s *Scheduler) claim(ctx context.Context, batch []pendingClaim) {
	var deadline int64
	claims := make([]fsm.Claim, len(batch))
	for i, p := range batch {
		claims[i] = p.claim
		deadline = max(deadline, p.claim.Deadline)
	}
	cctx, cancel := context.WithDeadline(ctx, time.Unix(0, deadline))
	defer cancel()
	res, err := s.coord.Claim(cctx, claims)
	if err != nil {
		missed := s.recoverGrants(ctx, batch)
		if ctx.Err() == nil && missed > 0 {
			s.logger.Warn("claim failed; ticks missed", "claims", len(batch), "missed", missed, "job", batch[0].claim.Job, "tick", batch[0].claim.Tick, "error", err)
		}
		return
	}
	for i, o := range res.Outcomes {
		p := batch[i]
		if !o.Granted() {
			s.logger.Trace("claim refused", "job", p.claim.Job, "tick", p.claim.Tick, "reason", o.Reason, "holder", o.Holder)
			continue
		}
		s.start(ctx, p.js, Run{
			Job:   p.claim.Job,
			Tick:  p.claim.Tick,
			At:    time.Unix(0, p.claim.At),
			Node:  s.node,
			Token: o.Token,
		})
	}
}

// recoverWindow is how long a node whose claim got no answer watches its
// own state machine for the grant. A committed entry reaches every
// follower within a heartbeat or two.
const recoverWindow = time.Second

// recoverGrants handles a claim batch that got no answer, typically a reply
// lost to a leader change or a deadline hit while the entry was committing.
// The entry may still have been committed: this node's own state machine
// applies only committed entries, so a grant it shows for this node is as
// authoritative as the reply would have been. It starts those runs and
// returns how many claims stayed unresolved.
func (s *Scheduler) recoverGrants(ctx context.Context, batch []pendingClaim) int {
	pending := append([]pendingClaim(nil), batch...)
	deadline := time.Now().Add(recoverWindow)
	for {
		next := pending[:0]
		for _, p := range pending {
			st, ok := s.coord.LastGrant(p.claim.Job)
			if !ok || st.LastTick < p.claim.Tick {
				next = append(next, p)
				continue
			}
			if st.LastTick == p.claim.Tick && st.Holder == s.node {
				s.start(ctx, p.js, Run{Job: p.claim.Job, Tick: p.claim.Tick, At: time.Unix(0, p.claim.At), Node: s.node, Token: st.Token})
			}
		}
		pending = next
		if len(pending) == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return len(pending)
		case <-time.After(20 * time.Millisecond):
		}
	}
	for _, p := range pending {
		p.js.failed.Add(1)
	}
	return len(pending)
}

// start runs a granted tick in its own goroutine, at most once per tick on
// this node.
func (s *Scheduler) start(ctx context.Context, js *jobState, r Run) {
	for {
		last := js.lastStarted.Load()
		if r.Tick <= last {
			return
		}
		if js.lastStarted.CompareAndSwap(last, r.Tick) {
			break
		}
	}
	js.active.Add(1)
	js.runs.Add(1)
	s.runs.Add(1)
	leased := s.keeper != nil && r.Token != 0 && js.job.Overlap == SkipIfRunning
	go func() {
		defer s.runs.Done()
		defer js.active.Add(-1)
		runCtx := ctx
		if leased {
			var cancel context.CancelFunc
			runCtx, cancel = context.WithCancel(ctx)
			defer cancel()
			ref := fsm.RunRef{Job: r.Job, Tick: r.Tick}
			s.keeper.begin(ref, js.job.RunLease, cancel)
			defer s.keeper.end(ref)
		}
		s.execute(runCtx, js, r)
	}()
}

// execute calls the job body, turning a panic into a log line.
func (s *Scheduler) execute(ctx context.Context, js *jobState, r Run) {
	defer func() {
		if p := recover(); p != nil {
			js.panics.Add(1)
			s.logger.Error("job panicked", "job", r.Job, "tick", r.Tick, "token", r.Token, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	s.logger.Debug("run", "job", r.Job, "tick", r.Tick, "token", r.Token)
	if err := js.job.Func(ctx, r); err != nil {
		s.logger.Warn("job failed", "job", r.Job, "tick", r.Tick, "token", r.Token, "error", err)
	}
}

// event is a due moment for a job: its tick, or a fallback attempt to claim
// a tick the preferred replica has not claimed.
type event struct {
	at       time.Time
	js       *jobState
	tick     int64
	fallback bool
}

// eventQueue is a min-heap by time.
type eventQueue []event

func (q eventQueue) Len() int           { return len(q) }
func (q eventQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q eventQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)        { *q = append(*q, x.(event)) }
func (q *eventQueue) Pop() any {
	old := *q
	n := len(old)
	ev := old[n-1]
	*q = old[:n-1]
	return ev
}
