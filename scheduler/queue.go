package scheduler

import "time"

// eventQueue holds the scheduler's events by due time. Jobs that share a
// schedule fall due at exactly the same instant (ticks are aligned, and a
// fallback is its tick plus a delay the jobs share), so events are kept in
// groups, one per distinct due time, under a min-heap of those times. A
// tick of 50,000 jobs is then one group taken in one step, rather than
// 50,000 pops of a heap of every event, each a dozen compare-and-swaps.
// With Jitter each job's tick has its own time and its own group, which
// costs about what a heap of events did. It is not safe for concurrent
// use: the Scheduler's mu guards it.
type eventQueue struct {
	// times is a min-heap of the due times, in Unix nanoseconds, that
	// have a group.
	times []int64
	// groups holds each due time's events, in the order queued.
	groups map[int64][]event
	// n counts the events.
	n int
	// spare holds emptied groups' slices, for reuse by the next groups.
	spare [][]event
}

// len returns how many events are queued.
func (q *eventQueue) len() int { return q.n }

// push queues ev at ev.at.
func (q *eventQueue) push(ev event) {
	if q.groups == nil {
		q.groups = make(map[int64][]event)
	}
	k := ev.at.UnixNano()
	g, ok := q.groups[k]
	if !ok {
		if last := len(q.spare) - 1; last >= 0 {
			g, q.spare = q.spare[last], q.spare[:last]
		}
		q.pushTime(k)
	}
	q.groups[k] = append(g, ev)
	q.n++
}

// next returns the earliest due time, and false if the queue is empty.
func (q *eventQueue) next() (time.Time, bool) {
	if len(q.times) == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, q.times[0]), true
}

// popDue removes every event due at or before upto and appends them to
// out, earliest group first.
func (q *eventQueue) popDue(upto time.Time, out []event) []event {
	limit := upto.UnixNano()
	for len(q.times) > 0 && q.times[0] <= limit {
		k := q.popTime()
		g := q.groups[k]
		delete(q.groups, k)
		out = append(out, g...)
		q.n -= len(g)
		clear(g) // drop the jobStates, so a removed job can be collected
		if cap(g) <= maxSpareGroup && len(q.spare) < maxSpareGroups {
			q.spare = append(q.spare, g[:0])
		}
	}
	return out
}

// maxSpareGroup is the largest group slice kept for reuse, and
// maxSpareGroups how many are kept: tick groups come back every interval,
// and what a past burst left over should not be held for ever.
const (
	maxSpareGroup  = 1 << 17
	maxSpareGroups = 64
)

// all returns a copy of every queued event, in no particular order.
func (q *eventQueue) all() []event {
	out := make([]event, 0, q.n)
	for _, g := range q.groups {
		out = append(out, g...)
	}
	return out
}

// reset empties the queue.
func (q *eventQueue) reset() { *q = eventQueue{} }

func (q *eventQueue) pushTime(k int64) {
	q.times = append(q.times, k)
	i := len(q.times) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if q.times[parent] <= q.times[i] {
			break
		}
		q.times[parent], q.times[i] = q.times[i], q.times[parent]
		i = parent
	}
}

func (q *eventQueue) popTime() int64 {
	h := q.times
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	for i := 0; ; {
		small, l, r := i, 2*i+1, 2*i+2
		if l < len(h) && h[l] < h[small] {
			small = l
		}
		if r < len(h) && h[r] < h[small] {
			small = r
		}
		if small == i {
			break
		}
		h[i], h[small] = h[small], h[i]
		i = small
	}
	q.times = h
	return top
}
