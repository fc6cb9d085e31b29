package scheduler

import (
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// Hooks are functions a Scheduler calls as its jobs run, skip ticks or
// miss them, for metrics and alerting without wrapping every job. They are
// set once for the whole Scheduler, in Options.Hooks, and name the job
// they are about; a hook for one job checks the name. Every field may be
// nil.
//
// OnStart and OnFinish are called synchronously on the run's goroutine,
// around each call of the job's Func: their time counts against the run
// (and its Timeout does not), so they must return soon. OnSkip and
// OnMissed are called on a goroutine of the Scheduler, one call at a
// time, in the order the events happened, after the event and never while
// the Scheduler holds its locks: a slow hook delays later OnSkip and
// OnMissed calls, never the schedule. Any hook may call the Scheduler's
// methods. A hook that panics is recovered and logged at Error; the run or
// the schedule goes on.
type Hooks struct {
	// OnStart is called before each call of a job's Func, with the Run
	// that Func gets: a run with retries calls it once per attempt, and
	// Run.Attempt says which.
	OnStart func(r Run)
	// OnFinish is called after each call of a job's Func, with what it
	// returned (nil on success; an error wrapping ErrPanic if it panicked)
	// and how long the call took.
	OnFinish func(r Run, err error, took time.Duration)
	// OnSkip is called for a tick this node did not claim because the
	// job's previous run was still going here, as counted in
	// Stats.Skipped. at is the tick's scheduled instant.
	OnSkip func(job string, at time.Time)
	// OnMissed is called for a tick that, as far as this node can tell,
	// ran nowhere, as counted in Stats.Missed: for example its claim got
	// no answer before its StartDeadline while the cluster had no quorum,
	// or committed after it (refused as expired).
	// at is the tick's scheduled instant.
	OnMissed func(job string, at time.Time)
}

// hookStart calls OnStart for one attempt.
func (s *Scheduler) hookStart(r Run) {
	if f := s.hooks.OnStart; f != nil {
		s.callHook("OnStart", r.Job, func() { f(r) })
	}
}

// hookFinish calls OnFinish for one attempt.
func (s *Scheduler) hookFinish(r Run, err error, took time.Duration) {
	if f := s.hooks.OnFinish; f != nil {
		s.callHook("OnFinish", r.Job, func() { f(r, err, took) })
	}
}

// skipped counts a tick skipped because the job is still running here,
// and queues OnSkip. Safe to call with s.mu held, from any goroutine.
func (s *Scheduler) skipped(js *jobState, at time.Time) {
	js.skipped.Add(1)
	if f := s.hooks.OnSkip; f != nil {
		name := js.job.Name
		s.notes.post(func() { s.callHook("OnSkip", name, func() { f(name, at) }) })
	}
}

// noteMissed counts n ticks of js, the newest scheduled at at, that ran
// nowhere as far as this node can tell, and queues OnMissed once for them.
// Every path that gives up on a tick reports it here: a claim that got no
// answer before the tick's StartDeadline, and the misfire check (missed,
// in misfire.go). Safe to call with s.mu held, from any goroutine.
func (s *Scheduler) noteMissed(js *jobState, at time.Time, n uint64) {
	js.missed.Add(n)
	if f := s.hooks.OnMissed; f != nil {
		name := js.job.Name
		s.notes.post(func() { s.callHook("OnMissed", name, func() { f(name, at) }) })
	}
}

// callHook calls one hook, recovering and logging a panic in it.
func (s *Scheduler) callHook(hook, job string, call func()) {
	defer func() {
		if p := recover(); p != nil {
			s.logger.Error("hook panicked", "hook", hook, "job", job, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	call()
}

// notifier calls queued functions one at a time, in order, on a goroutine
// it starts when the queue becomes non-empty and that ends when the queue
// is empty, so posting never blocks and nothing runs while idle.
type notifier struct {
	mu      sync.Mutex
	queue   []func()
	running bool
	// idle is closed when the draining goroutine ends.
	idle chan struct{}
}

// post queues f. It never blocks.
func (n *notifier) post(f func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.queue = append(n.queue, f)
	if !n.running {
		n.running = true
		n.idle = make(chan struct{})
		go n.drain(n.idle)
	}
}

func (n *notifier) drain(idle chan struct{}) {
	defer close(idle)
	for {
		n.mu.Lock()
		if len(n.queue) == 0 {
			n.running = false
			n.mu.Unlock()
			return
		}
		f := n.queue[0]
		n.queue[0] = nil
		n.queue = n.queue[1:]
		n.mu.Unlock()
		f()
	}
}

// wait returns once everything posted so far has been called.
func (n *notifier) wait() {
	for {
		n.mu.Lock()
		if !n.running {
			n.mu.Unlock()
			return
		}
		idle := n.idle
		n.mu.Unlock()
		<-idle
	}
}
