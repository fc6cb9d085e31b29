package scheduler

import (
	"slices"
	"testing"
	"time"

	"github.com/interlockraft/interlock/fsm"
)

// TestFallbackClaimsAfterALaterGrant: the node ranked first for a tick
// stalls, and the next tick is granted before the node ranked second
// reaches its fallback. The fallback still claims the tick, the cluster
// grants it after the later one, and it runs late rather than nowhere.
func TestFallbackClaimsAfterALaterGrant(t *testing.T) {
	const interval = 200 * time.Millisecond
	coord := newFakeCoord("me", "a", "me")
	var runs runLog
	s := newScheduler(coord, nil)
	job := Job{Name: "j", Interval: interval, FallbackDelay: 50 * time.Millisecond, StartDeadline: time.Second, Func: runs.record()}
	if err := s.Add(job); err != nil {
		t.Fatal(err)
	}
	// The first instant, at least two intervals ahead, that node a ranks
	// first for. Node a never claims it, and the instant after it is
	// granted (to a) before this node's loop reaches it, as when a stalled
	// and the next tick's claim went ahead: its window is wide enough to
	// be granted now.
	stalled := time.Now().Truncate(interval).Add(2 * interval)
	for positionOf("j", stalled.UnixNano(), []string{"a", "me"}, "a") != 0 {
		stalled = stalled.Add(interval)
	}
	next := stalled.Add(interval)
	coord.mu.Lock()
	res := coord.applyLocked("a", []fsm.Claim{{Job: "j", Tick: TickIndex(interval, next), At: next.UnixNano(), Deadline: next.Add(time.Minute).UnixNano()}})
	coord.mu.Unlock()
	if !res.Outcomes[0].Granted() {
		t.Fatalf("node a's claim for the next instant: %+v", res.Outcomes[0])
	}
	stop := startRun(t, s)
	ranStalled := func() bool {
		return slices.ContainsFunc(runs.snapshot(), func(r Run) bool { return r.At.Equal(stalled) })
	}
	eventually(t, waitTimeout, ranStalled, "the stalled node's instant %s never ran here", stalled)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats()["j"].Missed; got != 0 {
		t.Errorf("Stats().Missed = %d, want 0", got)
	}
}
