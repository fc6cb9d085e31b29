package scheduler

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/internal/runreg"
	"github.com/interlockraft/interlock/internal/seam"
)

// Singleton runs a long-lived function, such as a queue consumer or a loop
// only a leader may run, on exactly one replica at a time: the replica that
// holds the cluster lock named "singleton/" + Name. Every replica calls Run
// with the same Name; one of them gets the lock and calls Func, the others
// wait in the lock's queue.
//
// Func's context is cancelled the moment this replica's lease on the lock
// is lost: when it could not be renewed before it expired by the local
// clock (a partition, a frozen process, a cluster without quorum), which is
// before any other replica can be granted the lock. Func must return soon
// after: until it does, this replica does not compete again, and what it
// does after its lease was lost is only stopped by the fencing token it was
// given, which a resource that remembers the highest token it saw can
// check. If the holder crashes, its lease expires after at most TTL and the
// next replica in the queue takes over (after a Raft election first, if the
// holder was also the Raft leader).
//
// Restart policy: whenever Func returns while Run goes on (with an error,
// nil, a panic, or after its context was cancelled), the lock is released
// at once, so a waiting replica takes over, and this replica competes again
// after RestartDelay. A returned error or a panic is logged at Warn or
// Error; neither stops Run.
//
// Singleton needs a real *cluster.Node: the schedulertest fake keeps no
// locks. A Singleton must not be changed while Run runs.
type Singleton struct {
	// Name identifies the singleton across replicas. Required.
	Name string
	// Cluster is this replica's node. Required.
	Cluster *cluster.Node
	// TTL is the length of the lease on the lock, renewed every third of
	// it while Func runs: a crashed holder is replaced after at most TTL.
	// Default: 2s.
	TTL time.Duration
	// RestartDelay is how long this replica waits after Func returned
	// before it competes for the lock again. Default: 1s.
	RestartDelay time.Duration
	// Func is the body, called with the lease's fencing token: it strictly
	// increases each time any replica takes the singleton over. Required.
	Func func(ctx context.Context, token uint64) error
}

// singletonLease is what a Singleton uses of a *cluster.Lease.
type singletonLease interface {
	Token() uint64
	Done() <-chan struct{}
	Unlock(ctx context.Context) error
}

// singletonLocker takes the named lock with keep-alive, blocking until it
// is granted or ctx ends.
type singletonLocker func(ctx context.Context, name string, ttl time.Duration) (singletonLease, error)

const (
	defaultSingletonTTL          = 2 * time.Second
	defaultSingletonRestartDelay = time.Second
	// singletonRetryMax caps the wait between failed lock requests.
	singletonRetryMax = 2 * time.Second
)

// Run competes for the singleton and runs Func whenever this replica holds
// it, until ctx ends or the Cluster node shuts down; it then cancels
// Func's context, waits for Func to return, releases the lock and returns
// nil. The node's Shutdown waits for Func to return (up to
// cluster.Config.LeaveTimeout) before it releases the node's locks, so a
// graceful shutdown hands the singleton over at once.
//
// It returns at once an error wrapping ErrInvalidJob that names the field
// for an empty Name, a nil Cluster or Func, or a negative TTL or
// RestartDelay, and one wrapping cluster.ErrShutdown if the node is
// already shutting down.
func (s *Singleton) Run(ctx context.Context) error {
	ttl, delay, err := s.normalize()
	if err != nil {
		return err
	}
	c, ok := seam.Of(s.Cluster)
	lr, ok2 := c.(seam.LocalRunner)
	if !ok || !ok2 {
		return fmt.Errorf("%w %q: Singleton.Cluster cannot stop the singleton on shutdown; pass the node cluster.Start returned", ErrInvalidJob, s.Name)
	}
	node := s.Cluster
	lock := func(ctx context.Context, name string, ttl time.Duration) (singletonLease, error) {
		return node.Lock(ctx, name, ttl, cluster.WithKeepAlive())
	}
	return s.run(ctx, lock, lr.LocalRuns(), node.Logger().Named("scheduler"), ttl, delay)
}

// normalize checks the fields and returns the TTL and RestartDelay to use.
func (s *Singleton) normalize() (ttl, delay time.Duration, err error) {
	switch {
	case s.Name == "":
		return 0, 0, fmt.Errorf("%w: Singleton.Name is empty; name the singleton the same on every replica", ErrInvalidJob)
	case s.Cluster == nil:
		return 0, 0, fmt.Errorf("%w %q: Singleton.Cluster is nil; pass this replica's *cluster.Node", ErrInvalidJob, s.Name)
	case s.Func == nil:
		return 0, 0, fmt.Errorf("%w %q: Singleton.Func is nil; give it the function to run", ErrInvalidJob, s.Name)
	case s.TTL < 0:
		return 0, 0, fmt.Errorf("%w %q: Singleton.TTL is %s; use 0 for the default (2s) or a positive duration", ErrInvalidJob, s.Name, s.TTL)
	case s.RestartDelay < 0:
		return 0, 0, fmt.Errorf("%w %q: Singleton.RestartDelay is %s; use 0 for the default (1s) or a positive duration", ErrInvalidJob, s.Name, s.RestartDelay)
	}
	ttl, delay = s.TTL, s.RestartDelay
	if ttl == 0 {
		ttl = defaultSingletonTTL
	}
	if delay == 0 {
		delay = defaultSingletonRestartDelay
	}
	return ttl, delay, nil
}

// run is Run's loop, on a lock and a registry of runs that tests can fake.
func (s *Singleton) run(ctx context.Context, lock singletonLocker, reg *runreg.Registry, logger hclog.Logger, ttl, delay time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Joining the node's registry makes its Shutdown cancel ctx.
	owner, err := reg.Join(cancel)
	if err != nil {
		return fmt.Errorf("scheduler: singleton %q cannot start: %w (%v); start it on a running node", s.Name, cluster.ErrShutdown, err)
	}
	defer owner.Leave()
	name := "singleton/" + s.Name
	retry := 50 * time.Millisecond
	var last int64
	for ctx.Err() == nil {
		lease, err := lock(ctx, name, ttl)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, cluster.ErrShutdown) {
				return nil
			}
			logger.Warn("singleton could not take its lock, retrying", "singleton", s.Name, "wait", retry, "error", err)
			if !waitOrDone(ctx, retry) {
				return nil
			}
			retry = min(2*retry, singletonRetryMax)
			continue
		}
		retry = 50 * time.Millisecond
		// Registered as a run of the node, whose Shutdown waits for it
		// before releasing the node's locks; the instant only has to grow.
		last = max(time.Now().UnixNano(), last+1)
		if !s.hold(ctx, lease, reg, runreg.Key{Job: name, At: last}, logger, ttl) {
			return nil
		}
		if !waitOrDone(ctx, delay) {
			return nil
		}
	}
	return nil
}

// hold runs Func under lease until it returns, then releases the lock. It
// reports false if the node is shutting down.
func (s *Singleton) hold(ctx context.Context, lease singletonLease, reg *runreg.Registry, key runreg.Key, logger hclog.Logger, ttl time.Duration) bool {
	token := lease.Token()
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), ttl)
		defer cancel()
		if err := lease.Unlock(uctx); err != nil && !errors.Is(err, cluster.ErrLeaseLost) {
			logger.Debug("singleton could not release its lock; it expires by its TTL", "singleton", s.Name, "token", token, "error", err)
		}
	}()
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	end, ok := reg.Begin(runreg.Run{Key: key, Token: token}, cancel)
	if !ok {
		return false
	}
	defer end()
	lost := make(chan struct{})
	go func() {
		select {
		case <-lease.Done():
			close(lost)
			cancel()
		case <-fctx.Done():
		}
	}()
	logger.Debug("singleton started", "singleton", s.Name, "token", token)
	err := s.call(fctx, token, logger)
	cancel()
	select {
	case <-lost:
		logger.Warn("singleton lease lost; its context was cancelled", "singleton", s.Name, "token", token, "error", err)
	default:
		if err != nil && ctx.Err() == nil {
			logger.Warn("singleton returned an error; handing it over", "singleton", s.Name, "token", token, "error", err)
		} else {
			logger.Debug("singleton returned", "singleton", s.Name, "token", token, "error", err)
		}
	}
	return true
}

// call calls Func, turning a panic into an error.
func (s *Singleton) call(ctx context.Context, token uint64, logger hclog.Logger) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: singleton %q token %d: %v", ErrPanic, s.Name, token, p)
			logger.Error("singleton panicked", "singleton", s.Name, "token", token, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	return s.Func(ctx, token)
}
