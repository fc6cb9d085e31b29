package scheduler

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/interlockraft/interlock/fsm"
)

// expiringCoord refuses every claim as expired, as a leader does when the
// claim's entry commits after the tick's start deadline (a slow commit, an
// election). With peer set, the peer is granted each instant first, by a
// claim with a longer deadline (a catch-up claim, say), so the instant ran
// there.
type expiringCoord struct {
	*fakeCoord
	peer string

	mu  sync.Mutex
	ats []int64
}

func (c *expiringCoord) Claim(_ context.Context, claims []fsm.Claim, _ bool) (*fsm.ClaimResult, error) {
	if c.peer != "" {
		c.fakeCoord.mu.Lock()
		for _, cl := range claims {
			cl.Deadline = cl.At + int64(time.Hour)
			c.fakeCoord.applyLocked(c.peer, []fsm.Claim{cl})
		}
		c.fakeCoord.mu.Unlock()
	}
	res := &fsm.ClaimResult{Index: 1, Outcomes: make([]fsm.Outcome, len(claims))}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, cl := range claims {
		res.Outcomes[i] = fsm.Outcome{Reason: fsm.ReasonExpired}
		c.ats = append(c.ats, cl.At)
	}
	return res, nil
}

func (c *expiringCoord) claimed() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ats)
}

// missedLog records Hooks.OnMissed calls.
type missedLog struct {
	mu  sync.Mutex
	ats []time.Time
}

func (l *missedLog) add(_ string, at time.Time) {
	l.mu.Lock()
	l.ats = append(l.ats, at)
	l.mu.Unlock()
}

func (l *missedLog) snapshot() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ats)
}

// TestExpiredRefusalCountsMissed: a claim refused as expired ran nowhere,
// unless the state machine shows another node holding its instant. Such a
// tick is counted in Stats.Missed, reported to OnMissed with its instant
// and to OnError wrapped in ErrMissed, once each; a tick another node
// holds is counted in Refused only.
func TestExpiredRefusalCountsMissed(t *testing.T) {
	const interval = 20 * time.Millisecond
	for _, tt := range []struct {
		name    string
		peer    string
		counted bool
	}{
		{"no node ran it", "", true},
		{"another node holds the instant", "peer", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			coord := &expiringCoord{fakeCoord: newFakeCoord("me", "me"), peer: tt.peer}
			var errs errorLog
			var hook missedLog
			s := newScheduler(coord, nil)
			s.onError = errs.add
			s.hooks.OnMissed = hook.add
			if err := s.Add(Job{Name: "j", Interval: interval, Func: noop}); err != nil {
				t.Fatal(err)
			}
			stop := startRun(t, s)
			eventually(t, waitTimeout, func() bool { return len(coord.claimed()) >= 5 }, "fewer than 5 claims")
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			claimed := coord.claimed()
			st := s.Stats()["j"]
			if st.Refused != uint64(len(claimed)) {
				t.Errorf("Refused = %d after %d expired claims", st.Refused, len(claimed))
			}
			if !tt.counted {
				if st.Missed != 0 || len(hook.snapshot()) != 0 || countErrors(errs.get("j"), ErrMissed) != 0 {
					t.Errorf("ticks another node holds counted as missed: Missed = %d, OnMissed %v, OnError %v", st.Missed, hook.snapshot(), errs.get("j"))
				}
				return
			}
			if st.Missed != uint64(len(claimed)) {
				t.Errorf("Missed = %d after %d expired claims of distinct instants; want one each", st.Missed, len(claimed))
			}
			var want, got []int64
			want = slices.Sorted(slices.Values(claimed))
			for _, at := range hook.snapshot() {
				got = append(got, at.UnixNano())
			}
			if !slices.Equal(slices.Sorted(slices.Values(got)), want) {
				t.Errorf("OnMissed instants %v; want the claimed ones %v", got, want)
			}
			if n := countErrors(errs.get("j"), ErrMissed); n != len(claimed) {
				t.Errorf("OnError got %d ErrMissed for %d expired claims", n, len(claimed))
			}
		})
	}
}

// TestLostClaimCountedOncePerInstant: a node counts an instant missed once,
// however many of its claims for it are lost, in whatever order the losses
// arrive, and a misfire check afterwards does not count them again.
func TestLostClaimCountedOncePerInstant(t *testing.T) {
	const interval = time.Second
	coord := newFakeCoord("me", "me")
	var hook missedLog
	s := newScheduler(coord, nil)
	s.hooks.OnMissed = hook.add
	if err := s.Add(Job{Name: "j", Interval: interval, Func: noop}); err != nil {
		t.Fatal(err)
	}
	js := s.jobs["j"]
	now := time.Now().Truncate(interval)
	lost := func(k int) pendingClaim {
		at := now.Add(time.Duration(k-5) * interval)
		return pendingClaim{js: js, claim: fsm.Claim{Job: "j", Tick: TickIndex(interval, at), At: at.UnixNano(), Deadline: at.Add(interval).UnixNano()}}
	}
	// The job's last grant is tick 0, so ticks 1 to 4 passed since.
	coord.mu.Lock()
	c := lost(0).claim
	c.Deadline = now.Add(time.Hour).UnixNano()
	coord.applyLocked("peer", []fsm.Claim{c})
	coord.mu.Unlock()

	s.expiredClaims([]pendingClaim{lost(3)})
	s.expiredClaims([]pendingClaim{lost(3)})       // the same instant again
	s.lostClaims([]pendingClaim{lost(2), lost(3)}) // an earlier one, resolved later
	s.expiredClaims([]pendingClaim{lost(0)})       // the peer holds it
	if m := js.missed.Load(); m != 2 {
		t.Fatalf("Missed = %d after losing ticks 2 and 3 (3 twice); want 2", m)
	}
	s.mu.Lock()
	_, claim := s.checkMissedLocked(context.Background(), js, time.Time{}, now)
	s.mu.Unlock()
	if claim {
		t.Error("the misfire check claimed a tick under Skip")
	}
	// The check counts from the newest instant counted (tick 3): tick 4.
	if m := js.missed.Load(); m != 3 {
		t.Errorf("Missed = %d after the check; want 3 (ticks 2, 3, then 4)", m)
	}
	s.notes.wait()
	if n := len(hook.snapshot()); n != 3 {
		t.Errorf("OnMissed called %d times; want 3", n)
	}
}

// failFirstCoord fails the first claim, as a cluster without quorum does,
// and grants every later one.
type failFirstCoord struct {
	*fakeCoord
	mu     sync.Mutex
	failed []fsm.Claim
}

func (c *failFirstCoord) Claim(ctx context.Context, claims []fsm.Claim, anyOrder bool) (*fsm.ClaimResult, error) {
	c.mu.Lock()
	first := c.failed == nil
	if first {
		c.failed = slices.Clone(claims)
	}
	c.mu.Unlock()
	if first {
		return nil, errors.New("fake: no quorum")
	}
	return c.fakeCoord.Claim(ctx, claims, anyOrder)
}

// TestRunOnceCatchUpAfterFailedClaim: under RunOnce, a tick whose claim got
// no answer gets one catch-up run, by its own instant, as soon as the loss
// is known, within MisfireWindow; it is counted missed once.
func TestRunOnceCatchUpAfterFailedClaim(t *testing.T) {
	// Longer than recoverWindow, so the failed claim is resolved (as lost)
	// before the next tick's grant could hide it.
	const interval = 1500 * time.Millisecond
	const window = 5 * time.Second
	coord := &failFirstCoord{fakeCoord: newFakeCoord("me", "me")}
	var log runLog
	s := newScheduler(coord, nil)
	if err := s.Add(Job{Name: "j", Interval: interval, Misfire: RunOnce, MisfireWindow: window, Func: log.record()}); err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, s)
	eventually(t, 3*waitTimeout, func() bool {
		coord.mu.Lock()
		defer coord.mu.Unlock()
		if coord.failed == nil {
			return false
		}
		lost := time.Unix(0, coord.failed[0].At)
		for _, r := range log.snapshot() {
			if r.At.After(lost) {
				return true
			}
		}
		return false
	}, "no run after the failed claim's tick")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	lost := coord.failed[0]
	var catchUps []fsm.Claim
	for _, c := range coord.claimCalls() {
		for _, cl := range c.claims {
			if cl.At == lost.At {
				catchUps = append(catchUps, cl)
			}
		}
	}
	if len(catchUps) != 1 || catchUps[0].Deadline != lost.At+int64(window) {
		t.Fatalf("claims of the lost instant after the failure: %+v; want one catch-up with deadline instant + MisfireWindow", catchUps)
	}
	ran := 0
	for _, r := range log.snapshot() {
		if r.At.UnixNano() == lost.At {
			ran++
		}
	}
	if ran != 1 {
		t.Errorf("the lost tick ran %d times; want one catch-up run", ran)
	}
	if st := s.Stats()["j"]; st.Missed != 1 || st.ClaimFailures != 1 {
		t.Errorf("Stats() = %+v; want the lost tick counted once as missed and as a failed claim", st)
	}
}

// busyCoord refuses every claim as busy: the job's previous run, on
// holder, still holds its run lease as far as the cluster knows.
type busyCoord struct {
	*expiringCoord
	holder string
}

func (c *busyCoord) Claim(ctx context.Context, claims []fsm.Claim, anyOrder bool) (*fsm.ClaimResult, error) {
	res, err := c.expiringCoord.Claim(ctx, claims, anyOrder)
	for i := range res.Outcomes {
		res.Outcomes[i] = fsm.Outcome{Reason: fsm.ReasonBusy, Holder: c.holder}
	}
	return res, err
}

// TestStaleOwnLeaseCountsMissed: a claim refused as busy because of this
// node's own run lease, while no run of the job goes on here (the lease's
// end had not committed yet), loses the tick on every node; at the tick's
// start deadline it counts as missed, once. A lease held by another node
// is that node's to judge: nothing is counted here.
func TestStaleOwnLeaseCountsMissed(t *testing.T) {
	const interval = 20 * time.Millisecond
	for _, tt := range []struct {
		holder  string
		counted bool
	}{
		{"me", true},
		{"peer", false},
	} {
		t.Run("held by "+tt.holder, func(t *testing.T) {
			coord := &busyCoord{expiringCoord: &expiringCoord{fakeCoord: newFakeCoord("me", "me")}, holder: tt.holder}
			var hook missedLog
			s := newScheduler(coord, nil)
			s.hooks.OnMissed = hook.add
			// A start deadline of ten intervals: with the default of one
			// (20 ms), a loop that a loaded CI host stalled for longer lost
			// a tick it never claimed, counted missed for another reason
			// than the lease, which made both cases fail once in CI.
			if err := s.Add(Job{Name: "j", Interval: interval, StartDeadline: 10 * interval, Func: noop}); err != nil {
				t.Fatal(err)
			}
			stop := startRun(t, s)
			eventually(t, waitTimeout, func() bool { return len(coord.claimed()) >= 5 }, "fewer than 5 claims")
			claimedBefore := coord.claimed()
			if tt.counted {
				// Each claimed tick is judged at its start deadline, ten
				// intervals after it: all but the newest, in time.
				eventually(t, waitTimeout, func() bool { return s.Stats()["j"].Missed >= uint64(len(claimedBefore)-1) }, "busy ticks not counted missed")
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			claimed := coord.claimed()
			st := s.Stats()["j"]
			if !tt.counted {
				if st.Missed != 0 {
					t.Errorf("Missed = %d for ticks another node's lease kept; want 0", st.Missed)
				}
				return
			}
			ats := hook.snapshot()
			if uint64(len(ats)) != st.Missed || st.Missed > uint64(len(claimed)) {
				t.Errorf("Missed = %d, OnMissed %d times, for %d claims", st.Missed, len(ats), len(claimed))
			}
			seen := map[int64]bool{}
			for _, at := range ats {
				if seen[at.UnixNano()] || !slices.Contains(claimed, at.UnixNano()) {
					t.Errorf("OnMissed for %s: counted twice, or never claimed", at)
				}
				seen[at.UnixNano()] = true
			}
		})
	}
}
