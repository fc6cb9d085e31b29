package cluster_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/scheduler"
)

// tracedRun is one run of a job, as the job itself saw it.
type tracedRun struct {
	node      string
	token     uint64
	start     time.Time
	cancelled time.Time // when its ctx ended, zero while it has not
	end       time.Time // when it returned, zero while it has not
	// ctx is the run's context, to tell a cancellation not yet observed
	// by the job from none at all.
	ctx context.Context
}

// runTrace records every run of a job on every node.
type runTrace struct {
	mu   sync.Mutex
	runs []*tracedRun
}

// job returns a job body that runs until its ctx ends, then takes cleanup
// to finish; with ignoreCtx it instead runs for exactly ignoreCtx.
func (tr *runTrace) job(cleanup, ignoreCtx time.Duration) scheduler.Func {
	return func(ctx context.Context, r scheduler.Run) error {
		run := &tracedRun{node: r.Node, token: r.Token, start: time.Now(), ctx: ctx}
		tr.mu.Lock()
		tr.runs = append(tr.runs, run)
		tr.mu.Unlock()
		// A job deaf to its ctx learns of the cancellation only from this
		// callback. It runs in a goroutine of its own, which a loaded
		// machine may start hundreds of milliseconds late (seen in CI: the
		// run had already returned on its ctx with the callback still not
		// run), so a job that waits on ctx records the moment itself.
		stop := context.AfterFunc(ctx, func() { tr.markCancelled(run, time.Now()) })
		defer stop()
		if ignoreCtx > 0 {
			time.Sleep(ignoreCtx) // the job's own work, deaf to ctx
		} else {
			<-ctx.Done()
			tr.markCancelled(run, time.Now())
			time.Sleep(cleanup) // the job's own clean-up after cancellation
		}
		tr.mu.Lock()
		run.end = time.Now()
		tr.mu.Unlock()
		return nil
	}
}

// markCancelled records that run's ctx was seen to end at, keeping the
// earliest of the moments it was seen.
func (tr *runTrace) markCancelled(run *tracedRun, at time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if run.cancelled.IsZero() || at.Before(run.cancelled) {
		run.cancelled = at
	}
}

// snapshot copies the runs.
func (tr *runTrace) snapshot() []tracedRun {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := make([]tracedRun, len(tr.runs))
	for i, r := range tr.runs {
		out[i] = *r
	}
	return out
}

// firstElsewhere returns the first run on a node other than node.
func (tr *runTrace) firstElsewhere(node string) (tracedRun, bool) {
	for _, r := range tr.snapshot() {
		if r.node != node {
			return r, true
		}
	}
	return tracedRun{}, false
}

// schedRun is a scheduler's Run going on in the background.
type schedRun struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned; err is set then
	err    error
}

// runScheduler runs a scheduler with job on n until the test ends, or until
// n shuts down.
func runScheduler(t *testing.T, n *cluster.Node, job scheduler.Job) *schedRun {
	t.Helper()
	s := scheduler.New(scheduler.Options{Cluster: n})
	if err := s.Add(job); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &schedRun{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(15 * time.Second):
			t.Errorf("scheduler on %s did not return within 15s of cancel", n.Name())
		}
	})
	return r
}

// A run whose holder is cut off from the cluster cannot renew its lease.
// Its ctx must end when the lease expires by the holder's own clock (the
// send time of the last renewal that held, plus RunLease), before the
// leader frees the job and another node starts the next run.
func TestPartitionedRunIsCancelledAtItsLocalLeaseDeadline(t *testing.T) {
	fn := newFaultNet()
	c := clustertest.MakeCluster(t, 3, clustertest.Options{Configure: func(i int, cfg *cluster.Config) { fn.configure(t, i, cfg) }})
	t.Cleanup(fn.heal) // before the nodes shut down
	leader := c.Leader(10 * time.Second)
	holder := (leader + 1) % 3
	// Not a multiple of the interval, so the first tick another node can
	// claim after the lease expires is not due at the very instant the
	// holder's local deadline passes.
	const lease = 1050 * time.Millisecond
	tr := &runTrace{}
	job := scheduler.Job{Name: "long", Interval: 100 * time.Millisecond, RunLease: lease, Func: tr.job(0, 0)}

	runScheduler(t, c.Nodes[holder], job)
	clustertest.Eventually(t, 15*time.Second, func() bool { return len(tr.snapshot()) > 0 }, "the job never started")
	for i, n := range c.Nodes {
		if i != holder {
			runScheduler(t, n, job)
		}
	}
	partitioned := time.Now()
	fn.isolate(holder, 3)

	holderName := c.Nodes[holder].Name()
	clustertest.Eventually(t, 20*time.Second, func() bool {
		_, ok := tr.firstElsewhere(holderName)
		return ok
	}, "no other node ran the job after the holder was cut off")
	next, _ := tr.firstElsewhere(holderName)
	first := tr.snapshot()[0]
	if first.node != holderName {
		t.Fatalf("first run on %s, want %s", first.node, holderName)
	}
	// Every renewal that held was sent before the partition, so the local
	// deadline is at most partitioned+lease. Allow for waking the
	// goroutine on a busy machine.
	const slack = 150 * time.Millisecond
	switch {
	case first.cancelled.IsZero():
		t.Fatalf("the partitioned holder's run was never cancelled (its ctx: %v); %s started the job %s after the partition (token %d)", first.ctx.Err(), next.node, next.start.Sub(partitioned), next.token)
	case first.cancelled.After(partitioned.Add(lease + slack)):
		t.Errorf("holder's run cancelled %s after the partition, want at most RunLease (%s)", first.cancelled.Sub(partitioned), lease)
	}
	if !first.cancelled.Before(next.start) {
		t.Errorf("holder's run cancelled %s after the partition, but %s started the next run %s after it", first.cancelled.Sub(partitioned), next.node, next.start.Sub(partitioned))
	}
	if next.token <= first.token {
		t.Errorf("next run's token %d is not above the holder's %d", next.token, first.token)
	}
	t.Logf("holder cancelled %s after the partition, next run on %s at %s", first.cancelled.Sub(partitioned), next.node, next.start.Sub(partitioned))
}

// Shutting a node down while its scheduler still runs a long SkipIfRunning
// job must stop that run before the node gives up its run lease; otherwise
// another node starts the job alongside it. A run that ignores its ctx
// keeps its lease until the lease expires.
func TestShutdownStopsRunsBeforeReleasingTheirLeases(t *testing.T) {
	const lease = 2 * time.Second
	t.Run("job honours ctx", func(t *testing.T) {
		tr := &runTrace{}
		c, holder, sched := startLongJob(t, tr, tr.job(300*time.Millisecond, 0), lease, 0)
		n := c.Nodes[holder]
		stopped := time.Now()
		shutdown := shutdownAsync(n)
		clustertest.Eventually(t, 20*time.Second, func() bool {
			_, ok := tr.firstElsewhere(n.Name())
			return ok
		}, "no other node ran the job after %s shut down", n.Name())
		next, _ := tr.firstElsewhere(n.Name())
		first := tr.snapshot()[0]
		switch {
		case first.end.IsZero():
			t.Fatalf("%s started the job %s after %s began to shut down, while %s's run (token %d) was still going", next.node, next.start.Sub(stopped), n.Name(), n.Name(), first.token)
		case next.start.Before(first.end):
			t.Fatalf("%s started the job %s before %s's run ended", next.node, first.end.Sub(next.start), n.Name())
		}
		if err := <-shutdown; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		c.Nodes[holder] = nil
		select {
		case <-sched.done:
			if sched.err != nil {
				t.Errorf("scheduler on the stopped node: %v", sched.err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("the scheduler on %s still runs 10s after its node shut down", n.Name())
		}
		t.Logf("run stopped %s after Shutdown began; next run on %s %s after that", first.end.Sub(stopped), next.node, next.start.Sub(first.end))
	})
	t.Run("job ignores ctx", func(t *testing.T) {
		tr := &runTrace{}
		const bound = 500 * time.Millisecond
		c, holder, _ := startLongJob(t, tr, tr.job(0, 4*time.Second), lease, bound)
		n := c.Nodes[holder]
		stopped := time.Now()
		shutdown := shutdownAsync(n)
		clustertest.Eventually(t, 20*time.Second, func() bool {
			_, ok := tr.firstElsewhere(n.Name())
			return ok
		}, "no other node ran the job after %s shut down", n.Name())
		next, _ := tr.firstElsewhere(n.Name())
		first := tr.snapshot()[0]
		// The lease was renewed every third of it until Shutdown, so it
		// cannot have expired before two thirds of it after Shutdown began.
		if earliest := stopped.Add(2 * lease / 3); next.start.Before(earliest) {
			t.Fatalf("%s started the job %s after %s began to shut down, before the kept lease of its unstoppable run could expire (at least %s)", next.node, next.start.Sub(stopped), n.Name(), 2*lease/3)
		}
		if err := <-shutdown; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		c.Nodes[holder] = nil
		t.Logf("next run on %s %s after Shutdown began; the deaf run still going then: %v", next.node, next.start.Sub(stopped), first.end.IsZero() || first.end.After(next.start))
	})
}

// startLongJob starts a 3-node cluster (LeaveTimeout bound, if set) with a
// scheduler running a long SkipIfRunning job on every node, and waits for
// the first run. It returns the index of the node running it and that
// node's scheduler.
func startLongJob(t *testing.T, tr *runTrace, f scheduler.Func, lease, bound time.Duration) (*clustertest.Cluster, int, *schedRun) {
	t.Helper()
	c := clustertest.MakeCluster(t, 3, clustertest.Options{Configure: func(_ int, cfg *cluster.Config) {
		if bound > 0 {
			cfg.LeaveTimeout = bound
		}
	}})
	c.Leader(10 * time.Second)
	job := scheduler.Job{Name: "long", Interval: 100 * time.Millisecond, RunLease: lease, Func: f}
	dones := make([]*schedRun, len(c.Nodes))
	for i, n := range c.Nodes {
		dones[i] = runScheduler(t, n, job)
	}
	clustertest.Eventually(t, 15*time.Second, func() bool { return len(tr.snapshot()) > 0 }, "the job never started")
	first := tr.snapshot()[0]
	for i, n := range c.Nodes {
		if n.Name() == first.node {
			return c, i, dones[i]
		}
	}
	t.Fatalf("the first run is on unknown node %q", first.node)
	return nil, 0, nil
}

// shutdownAsync shuts n down in the background.
func shutdownAsync(n *cluster.Node) <-chan error {
	done := make(chan error, 1)
	go func() { done <- n.Shutdown(context.Background()) }()
	return done
}
