package scheduler

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestEventQueuePopsInTimeOrder pushes events at random times, many of
// them shared, and checks that popDue hands out exactly those due, earliest
// first and in push order within a time, and that next and len follow.
func TestEventQueuePopsInTimeOrder(t *testing.T) {
	base := time.Unix(1_750_000_000, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	var q eventQueue
	var pushed []event
	for i := range 5000 {
		// 40 distinct times, so most events share a group.
		at := base.Add(time.Duration(rng.IntN(40)) * time.Millisecond)
		ev := event{at: at, inst: time.Unix(0, int64(i))}
		q.push(ev)
		pushed = append(pushed, ev)
	}
	if q.len() != len(pushed) {
		t.Fatalf("len = %d, want %d", q.len(), len(pushed))
	}
	if got := len(q.all()); got != len(pushed) {
		t.Fatalf("all has %d events, want %d", got, len(pushed))
	}
	// Stable by time: the order popDue must give.
	want := slices.Clone(pushed)
	slices.SortStableFunc(want, func(a, b event) int { return a.at.Compare(b.at) })
	var got []event
	for cut := base; q.len() > 0; cut = cut.Add(7 * time.Millisecond) {
		if at, ok := q.next(); !ok || at.Before(base) {
			t.Fatalf("next = %s, %v with %d queued", at, ok, q.len())
		}
		n := len(got)
		got = q.popDue(cut, got)
		for _, ev := range got[n:] {
			if ev.at.After(cut) {
				t.Fatalf("popDue(%s) gave an event due %s", cut, ev.at)
			}
		}
		if at, ok := q.next(); ok && !at.After(cut) {
			t.Fatalf("after popDue(%s), next is still due: %s", cut, at)
		}
	}
	if !slices.EqualFunc(got, want, func(a, b event) bool { return a.at.Equal(b.at) && a.inst.Equal(b.inst) }) {
		t.Fatal("popDue's order is not by time, then by push")
	}
	if _, ok := q.next(); ok {
		t.Error("next reports an event in an empty queue")
	}
	// Reused groups start empty.
	q.push(event{at: base, inst: base})
	if all := q.all(); len(all) != 1 || !all[0].inst.Equal(base) {
		t.Errorf("after reuse the queue holds %+v, want the one event", all)
	}
	q.reset()
	if q.len() != 0 || len(q.all()) != 0 {
		t.Error("reset left events")
	}
}

// BenchmarkEventQueueTick queues one tick of 50,000 jobs sharing an
// instant and takes it, as the loop does every interval.
func BenchmarkEventQueueTick(b *testing.B) {
	const jobs = 50000
	base := time.Unix(1_750_000_000, 0)
	var q eventQueue
	var due []event
	b.ReportAllocs()
	for i := range b.N {
		at := base.Add(time.Duration(i) * time.Second)
		for range jobs {
			q.push(event{at: at})
		}
		due = q.popDue(at, due[:0])
	}
}
