package scheduler

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// The runs claimed ahead of their start (lead.go) wait for it here. One
// launcher serves every Scheduler of the process that runs on the
// machine's clock, so the runs that several Schedulers have due at one
// instant are started by one goroutine, one Scheduler's after another's.
// With a waiting goroutine per Scheduler instead, each woke on its own
// timer and started its runs, and a waker that found both cores busy was
// pushed back behind the thousands of runs the others had just started:
// three nodes' Schedulers in one process started their last runs 40ms
// after the instant rather than 10ms. It holds no goroutine while nothing
// waits: a timer calls it at the earliest start.
type launcher struct {
	mu      sync.Mutex
	waiting launchHeap
	timer   *time.Timer
	// armed is when timer fires, zero if it is stopped.
	armed time.Time
}

// launchBatch is one Scheduler's runs that share a start.
type launchBatch struct {
	at   time.Time
	s    *Scheduler
	runs []*preparedRun
	// dropped is set, under the launcher's mu, when its Scheduler gave up
	// the batch before its start; launched when the launcher took it.
	dropped, launched bool
	done              chan struct{}
}

var runLauncher launcher

// wait starts runs at at, on the launcher's goroutine, and returns once
// they started. If ctx ends first, it drops the runs instead (dropRun)
// and returns.
func (l *launcher) wait(ctx context.Context, s *Scheduler, at time.Time, runs []*preparedRun) {
	b := &launchBatch{at: at, s: s, runs: runs, done: make(chan struct{})}
	l.mu.Lock()
	heap.Push(&l.waiting, b)
	l.armLocked()
	l.mu.Unlock()
	select {
	case <-b.done:
		return
	case <-ctx.Done():
	}
	l.mu.Lock()
	taken := b.launched
	if !taken {
		b.dropped = true
	}
	l.mu.Unlock()
	if taken {
		<-b.done
		return
	}
	for _, p := range runs {
		s.dropRun(p)
	}
}

// armLocked sets the timer for the earliest waiting batch. l.mu is held.
func (l *launcher) armLocked() {
	if len(l.waiting) == 0 {
		return
	}
	first := l.waiting[0].at
	if !l.armed.IsZero() && !first.Before(l.armed) {
		return
	}
	l.armed = first
	if l.timer == nil {
		l.timer = time.AfterFunc(time.Until(first), l.fire)
		return
	}
	l.timer.Reset(time.Until(first))
}

// fire starts every batch whose start has come, earliest first, and sets
// the timer for the next.
func (l *launcher) fire() {
	l.mu.Lock()
	l.armed = time.Time{}
	now := time.Now()
	var due []*launchBatch
	for len(l.waiting) > 0 && !l.waiting[0].at.After(now) {
		b := heap.Pop(&l.waiting).(*launchBatch)
		if b.dropped {
			continue
		}
		b.launched = true
		due = append(due, b)
	}
	l.armLocked()
	l.mu.Unlock()
	for _, b := range due {
		for _, p := range b.runs {
			b.s.launchOrDrop(p)
		}
		close(b.done)
	}
}

// launchHeap orders waiting batches by start.
type launchHeap []*launchBatch

func (h launchHeap) Len() int           { return len(h) }
func (h launchHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h launchHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *launchHeap) Push(x any)        { *h = append(*h, x.(*launchBatch)) }
func (h *launchHeap) Pop() any {
	old := *h
	b := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return b
}
