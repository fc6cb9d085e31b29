// Package runreg is the registry of one node's local job runs, shared by
// every Scheduler that uses the node. It enforces two rules no single
// Scheduler can see on its own: a job name is scheduled by at most one
// Scheduler of the node at a time, and a (job, scheduled instant) runs at
// most once on the node, however many Schedulers the process holds or has
// held. It also lets the node stop its runs before it gives up their run
// leases on Shutdown.
//
// It is internal: a node hands it to the scheduler through internal/seam,
// and applications never reach it.
package runreg

import (
	"context"
	"errors"
	"slices"
	"sync"
)

var (
	// ErrHeld means another owner already holds the job name.
	ErrHeld = errors.New("job name held by another scheduler of this node")

	// ErrClosed means the registry is closed: its node is shutting down
	// and starts no more runs.
	ErrClosed = errors.New("node is stopping its local runs")
)

// Key identifies one run on a node: a job and its scheduled instant in Unix
// nanoseconds. The instant, not a tick index, identifies the tick, so the
// identity survives a change of the job's interval.
type Key struct {
	Job string
	At  int64
}

// Run describes a run in progress.
type Run struct {
	Key
	// Tick is the scheduler's tick number, for logs only.
	Tick int64
	// Token is the run's fencing token; zero without a cluster.
	Token uint64
}

type entry struct {
	Run
	cancel func()
}

// Registry records the owners of job names and the runs in progress of one
// node. All methods are safe for concurrent use; no method calls an owner's
// stop or a run's cancel while holding the registry's lock.
type Registry struct {
	mu     sync.Mutex
	closed bool
	names  map[string]*Owner
	// unlisted holds the names held for a job this node does not offer to
	// the cluster (its RequireTags exclude the node): Held leaves them out,
	// so they are never registered on the Schedulers' behalf.
	unlisted map[string]struct{}
	owners   map[*Owner]struct{}
	runs     map[Key]*entry
	// started is what each job started here: a run of an instant it holds
	// is refused, so a grant seen again (a retried claim answered as a
	// repeat, or the same tick claimed by a Scheduler that replaced another)
	// never starts a second run. One entry per job name the node ever ran.
	started map[string]*startedRuns
	// ended is closed, and replaced, whenever a run ends.
	ended chan struct{}
}

// New returns an empty, open registry.
func New() *Registry {
	return &Registry{
		names:    make(map[string]*Owner),
		unlisted: make(map[string]struct{}),
		owners:   make(map[*Owner]struct{}),
		runs:     make(map[Key]*entry),
		started:  make(map[string]*startedRuns),
		ended:    make(chan struct{}),
	}
}

// Owner is one holder of job names: one Scheduler.Run. Its methods are safe
// for concurrent use.
type Owner struct {
	r    *Registry
	stop func()
}

// Join adds an owner whose stop function ends its whole schedule (the
// Scheduler's Run context). Close calls stop. It fails with ErrClosed once
// the registry is closed.
func (r *Registry) Join(stop func()) (*Owner, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	o := &Owner{r: r, stop: stop}
	r.owners[o] = struct{}{}
	return o, nil
}

// Hold takes a job name for o. It fails with ErrHeld if another owner holds
// it, and with ErrClosed once the registry is closed. Holding a name o
// already holds succeeds.
func (o *Owner) Hold(job string) error {
	r := o.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if cur, ok := r.names[job]; ok && cur != o {
		return ErrHeld
	}
	r.names[job] = o
	delete(r.unlisted, job)
	return nil
}

// HoldUnlisted is Hold for a job that this node schedules but does not
// offer to the cluster, so Held leaves it out.
func (o *Owner) HoldUnlisted(job string) error {
	if err := o.Hold(job); err != nil {
		return err
	}
	o.r.mu.Lock()
	o.r.unlisted[job] = struct{}{}
	o.r.mu.Unlock()
	return nil
}

// Free gives up a job name if o holds it.
func (o *Owner) Free(job string) {
	r := o.r
	r.mu.Lock()
	if r.names[job] == o {
		delete(r.names, job)
		delete(r.unlisted, job)
	}
	r.mu.Unlock()
}

// Leave frees every name o holds and removes o.
func (o *Owner) Leave() {
	r := o.r
	r.mu.Lock()
	for job, cur := range r.names {
		if cur == o {
			delete(r.names, job)
			delete(r.unlisted, job)
		}
	}
	delete(r.owners, o)
	r.mu.Unlock()
}

// Held returns the job names some owner holds, sorted: the jobs the node's
// Schedulers run and offer to the cluster (not those held with
// HoldUnlisted). A closed registry holds none: its owners are stopping.
func (r *Registry) Held() []string {
	out := r.HeldUnsorted()
	slices.Sort(out)
	return out
}

// HeldUnsorted is Held in no particular order, for callers that look
// through tens of thousands of names and need no order.
func (r *Registry) HeldUnsorted() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	out := make([]string, 0, len(r.names))
	for job := range r.names {
		if _, ok := r.unlisted[job]; !ok {
			out = append(out, job)
		}
	}
	return out
}

// Begin records the start of run. It returns false, and records nothing,
// if the registry is closed or if this node already started the job at
// run.At, or at enough later instants that run.At cannot be a new grant
// (see startedRuns). Otherwise the caller must call end once the run
// returns; cancel ends the run's context and is called by Close.
func (r *Registry) Begin(run Run, cancel func()) (end func(), ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, false
	}
	st := r.started[run.Job]
	if st == nil {
		st = newStartedRuns()
		r.started[run.Job] = st
	}
	if !st.add(run.At) {
		return nil, false
	}
	e := &entry{Run: run, cancel: cancel}
	r.runs[run.Key] = e
	var once sync.Once
	return func() { once.Do(func() { r.end(run.Key) }) }, true
}

func (r *Registry) end(k Key) {
	r.mu.Lock()
	delete(r.runs, k)
	close(r.ended)
	r.ended = make(chan struct{})
	r.mu.Unlock()
}

// Close stops everything: from now on Join, Hold and Begin fail, every
// owner's stop and every run's cancel is called. It does not wait for the
// runs to return; Wait does. Calling it again does nothing more.
func (r *Registry) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	var calls []func()
	for o := range r.owners {
		calls = append(calls, o.stop)
	}
	for _, e := range r.runs {
		calls = append(calls, e.cancel)
	}
	r.mu.Unlock()
	for _, f := range calls {
		if f != nil {
			f()
		}
	}
}

// Wait waits until no run is in progress or until ctx ends, and returns
// the runs still in progress then, sorted by job and instant.
func (r *Registry) Wait(ctx context.Context) []Run {
	for {
		r.mu.Lock()
		left, ended := r.activeLocked(), r.ended
		r.mu.Unlock()
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ended:
		case <-ctx.Done():
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.activeLocked()
		}
	}
}

// Active returns the runs in progress, sorted by job and instant.
func (r *Registry) Active() []Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.activeLocked()
}

func (r *Registry) activeLocked() []Run {
	out := make([]Run, 0, len(r.runs))
	for _, e := range r.runs {
		out = append(out, e.Run)
	}
	slices.SortFunc(out, func(a, b Run) int {
		switch {
		case a.Job < b.Job:
			return -1
		case a.Job > b.Job:
			return 1
		case a.At < b.At:
			return -1
		case a.At > b.At:
			return 1
		}
		return 0
	})
	return out
}
