package scheduler

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestSlowClaimsAreSentAheadAndRunsStartAtTheirInstant checks claiming
// ahead (lead.go): once claims are seen to take a while, a tick's claim
// goes out before the tick's instant, and its run still never starts
// before that instant.
func TestSlowClaimsAreSentAheadAndRunsStartAtTheirInstant(t *testing.T) {
	coord := newFakeCoord("n1", "n1")
	coord.claimDelay = 20 * time.Millisecond
	s := newScheduler(coord, nil)
	var mu sync.Mutex
	var early []Run
	runs := 0
	err := s.Add(Job{Name: "ahead", Interval: 200 * time.Millisecond, Func: func(_ context.Context, r Run) error {
		started := time.Now()
		mu.Lock()
		defer mu.Unlock()
		runs++
		if started.Before(r.At) {
			early = append(early, r)
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	startRun(t, s)
	ahead := func() bool {
		for _, c := range coord.claimCalls() {
			if c.err == nil && len(c.claims) > 0 && c.at.UnixNano() < c.claims[0].At {
				return true
			}
		}
		return false
	}
	eventually(t, 10*time.Second, ahead, "no claim was sent ahead of its tick's instant")
	n := len(coord.claimCalls())
	eventually(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return runs >= n+2
	}, "runs stopped after the claims went ahead")
	mu.Lock()
	defer mu.Unlock()
	for _, r := range early {
		t.Errorf("tick %d at %s started before its instant", r.Tick, r.At.Format(time.RFC3339Nano))
	}
}
