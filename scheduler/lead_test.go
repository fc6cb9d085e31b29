package scheduler

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/interlockraft/interlock/fsm"
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

// busyAheadCoord refuses as busy, held by a peer, every claim answered
// before its tick's instant, as a cluster does while the previous run of
// the job on another node has not ended yet, and grants the others.
type busyAheadCoord struct {
	*fakeCoord
	mu      sync.Mutex
	refused []int64 // instants of the claims refused
}

func (c *busyAheadCoord) Claim(ctx context.Context, claims []fsm.Claim, anyOrder bool) (*fsm.ClaimResult, error) {
	if len(claims) > 0 && time.Now().Add(c.claimDelay).UnixNano() < claims[0].At {
		t := time.NewTimer(c.claimDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		res := &fsm.ClaimResult{Outcomes: make([]fsm.Outcome, len(claims))}
		c.mu.Lock()
		for i, cl := range claims {
			res.Outcomes[i] = fsm.Outcome{Reason: fsm.ReasonBusy, Holder: "peer"}
			c.refused = append(c.refused, cl.At)
		}
		c.mu.Unlock()
		return res, nil
	}
	return c.fakeCoord.Claim(ctx, claims, anyOrder)
}

func (c *busyAheadCoord) refusedAts() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.refused)
}

// TestClaimRefusedAsBusyAheadIsAskedAgainAtTheStart checks that a tick
// whose claim, sent ahead (lead.go), was refused because another node's
// previous run still held the job is claimed again at its start, and runs:
// under SkipIfRunning what counts is whether that run still goes at the
// start, which the refusal ahead of it cannot tell.
func TestClaimRefusedAsBusyAheadIsAskedAgainAtTheStart(t *testing.T) {
	coord := &busyAheadCoord{fakeCoord: newFakeCoord("n1", "n1")}
	coord.claimDelay = 20 * time.Millisecond
	s := newScheduler(coord, nil)
	var mu sync.Mutex
	ran := make(map[int64]bool)
	err := s.Add(Job{Name: "after-peer", Interval: 200 * time.Millisecond, Func: func(_ context.Context, r Run) error {
		mu.Lock()
		ran[r.At.UnixNano()] = true
		mu.Unlock()
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	startRun(t, s)
	eventually(t, 10*time.Second, func() bool { return len(coord.refusedAts()) >= 4 }, "no claim was sent ahead and refused as busy")
	refused := coord.refusedAts()[:4]
	eventually(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, at := range refused {
			if !ran[at] {
				return false
			}
		}
		return true
	}, "ticks refused as busy ahead of their start never ran: %v", refused)
}

// TestClaimTimeEstimate checks the lead's estimate of how long a claim
// takes: the first sample is taken as it is, one slow claim (a leader
// change) at most doubles it, slow claims tick after tick reach their
// time within a few ticks, and it decays slowly.
func TestClaimTimeEstimate(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name    string
		samples []time.Duration
		want    time.Duration
	}{
		{"first sample as it is", []time.Duration{80 * ms}, 80 * ms},
		{"one election at most doubles", []time.Duration{4 * ms, time.Second}, 9 * ms},
		{"slow tick after tick catches up", []time.Duration{4 * ms, 60 * ms, 60 * ms, 60 * ms, 60 * ms}, 60 * ms},
		{"decays by a thirty-second", []time.Duration{32 * ms, ms}, 31 * ms},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newScheduler(newFakeCoord("n1", "n1"), nil)
			for _, d := range tc.samples {
				s.noteClaimTime(d)
			}
			if got := time.Duration(s.claimTime.Load()); got != tc.want {
				t.Fatalf("estimate after %v = %v, want %v", tc.samples, got, tc.want)
			}
		})
	}
}

// TestLeadTableForgetsOnlyPastInstants checks the table of leads per
// instant: a prune forgets instants already past and keeps upcoming ones
// with their lead, and the next prune waits until the table has doubled.
func TestLeadTableForgetsOnlyPastInstants(t *testing.T) {
	s := newScheduler(newFakeCoord("n1", "n1"), nil)
	j := Job{Name: "j", Interval: time.Second, StartDeadline: time.Hour}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 1; i <= leadPruneMin; i++ {
		s.leadAtLocked(j, now.Add(-time.Duration(i)*time.Minute)) // past
	}
	s.claimTime.Store(int64(10 * time.Millisecond))
	upcoming := now.Add(time.Hour)
	want := s.leadAtLocked(j, upcoming) // the table is full: this prunes
	if len(s.leadOf) != 1 {
		t.Fatalf("after a prune the table holds %d instants, want only the upcoming one", len(s.leadOf))
	}
	s.claimTime.Store(int64(time.Millisecond))
	if got := s.leadAtLocked(j, upcoming); got != want || want != leadFactor*10*time.Millisecond {
		t.Fatalf("lead of the upcoming instant = %s after the estimate moved, want the %s it was given", got, want)
	}
	for i := 1; i < 2*leadPruneMin-1; i++ {
		s.leadAtLocked(j, now.Add(time.Duration(i)*time.Second))
	}
	if len(s.leadOf) != 2*leadPruneMin-1 {
		t.Fatalf("table holds %d instants, want all %d upcoming ones", len(s.leadOf), 2*leadPruneMin-1)
	}
	// The prune at leadPruneMin upcoming instants found nothing past, so
	// the next waits for twice as many.
	if s.leadPruneAt != 2*leadPruneMin {
		t.Fatalf("next prune at %d instants, want %d", s.leadPruneAt, 2*leadPruneMin)
	}
}

// TestLeadKeepsAJobsTicksInOrder checks that a tick's claim never goes out
// more than a quarter of the interval ahead, however long the job's
// StartDeadline and however slow its claims: a claim sent before the
// previous tick's was answered lost ticks to the state machine's in-order
// grants (inOrder).
func TestLeadKeepsAJobsTicksInOrder(t *testing.T) {
	const interval = 100 * time.Millisecond
	coord := newFakeCoord("n1", "n1")
	coord.claimDelay = 60 * time.Millisecond // a lead of 180 ms before the bound
	s := newScheduler(coord, nil)
	if err := s.Add(Job{Name: "late-ok", Interval: interval, StartDeadline: 2 * time.Second, Func: noop}); err != nil {
		t.Fatal(err)
	}
	startRun(t, s)
	ahead := func() bool {
		n := 0
		for _, c := range coord.claimCalls() {
			if c.err == nil && len(c.claims) > 0 && c.sent.UnixNano() < c.claims[0].At {
				n++
			}
		}
		return n >= 5
	}
	eventually(t, 10*time.Second, ahead, "fewer than 5 claims were sent ahead of their tick")
	for _, c := range coord.claimCalls() {
		for _, cl := range c.claims {
			if lead := time.Duration(cl.At - c.sent.UnixNano()); lead > interval/4 {
				t.Errorf("tick %d claimed %s ahead of its instant; want at most a quarter of the %s interval", cl.Tick, lead, interval)
			}
		}
	}
}

// duplicateCoord answers a job's claims as a leader does when a claim for
// the job's previous instant, from another node, was merged into the same
// entry before them: refused as duplicate, the job granted at that earlier
// instant. It does so for the first claim of each even tick and for every
// claim of each odd tick, and grants the others.
type duplicateCoord struct {
	*fakeCoord
	interval time.Duration
	mu       sync.Mutex
	attempts map[int64]int // claims seen per tick
}

func (c *duplicateCoord) Claim(ctx context.Context, claims []fsm.Claim, anyOrder bool) (*fsm.ClaimResult, error) {
	c.mu.Lock()
	refuse := len(claims) == 1 && (claims[0].Tick%2 != 0 || c.attempts[claims[0].Tick] == 0)
	if len(claims) == 1 {
		c.attempts[claims[0].Tick]++
	}
	c.mu.Unlock()
	if !refuse {
		return c.fakeCoord.Claim(ctx, claims, anyOrder)
	}
	return &fsm.ClaimResult{Outcomes: []fsm.Outcome{{Reason: fsm.ReasonDuplicate, Holder: "peer", At: claims[0].At - int64(c.interval)}}}, nil
}

func (c *duplicateCoord) attemptsOf(tick int64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.attempts[tick]
}

// TestClaimRefusedAsDuplicateIsClaimedOnceMore checks that a tick whose
// claim shared an entry with a claim for the job's earlier instant, and
// was refused as duplicate without being judged, is claimed once more and
// runs, and that a second such refusal is final.
func TestClaimRefusedAsDuplicateIsClaimedOnceMore(t *testing.T) {
	const interval = 100 * time.Millisecond
	coord := &duplicateCoord{fakeCoord: newFakeCoord("n1", "n1"), interval: interval, attempts: map[int64]int{}}
	s := newScheduler(coord, nil)
	var mu sync.Mutex
	ran := map[int64]int{}
	err := s.Add(Job{Name: "merged", Interval: interval, Overlap: AllowOverlap, Func: func(_ context.Context, r Run) error {
		mu.Lock()
		ran[r.Tick]++
		mu.Unlock()
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	first := TickIndex(interval, time.Now()) + 2
	startRun(t, s)
	// A third claim of a tick would go out at once after the second
	// refusal, long before the claim of the tick three intervals later.
	eventually(t, 10*time.Second, func() bool { return coord.attemptsOf(first+8) > 0 }, "tick %d was never claimed", first+8)
	mu.Lock()
	defer mu.Unlock()
	for tick := first; tick < first+6; tick++ {
		if tick%2 == 0 {
			if ran[tick] != 1 || coord.attemptsOf(tick) != 2 {
				t.Errorf("tick %d, refused as duplicate once: ran %d times after %d claims; want once after 2", tick, ran[tick], coord.attemptsOf(tick))
			}
			continue
		}
		if ran[tick] != 0 || coord.attemptsOf(tick) != 2 {
			t.Errorf("tick %d, refused as duplicate every time: ran %d times after %d claims; want never after 2", tick, ran[tick], coord.attemptsOf(tick))
		}
	}
}
