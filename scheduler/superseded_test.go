package scheduler

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/fsm"
)

// overtakingCoord lets a peer's claims overtake this node's first claim:
// before it is judged, the peer is granted the job's next instant, and,
// with ranFirst, the claimed instant itself before that. Claims for two
// consecutive ticks from different nodes commit in this order when the
// first one is retried at its start or held up in a slow forward.
type overtakingCoord struct {
	*fakeCoord
	interval time.Duration
	ranFirst bool

	mu    sync.Mutex
	first int64 // the overtaken claim's instant; 0 until it is sent
}

func (c *overtakingCoord) Claim(ctx context.Context, claims []fsm.Claim, anyOrder bool) (*fsm.ClaimResult, error) {
	c.mu.Lock()
	if c.first == 0 {
		cl := claims[0]
		c.first = cl.At
		c.fakeCoord.mu.Lock()
		var peer []fsm.Claim
		if c.ranFirst {
			peer = append(peer, fsm.Claim{Job: cl.Job, Tick: cl.Tick, At: cl.At, Deadline: cl.At + int64(time.Hour)})
		}
		next := cl.At + int64(c.interval)
		peer = append(peer, fsm.Claim{Job: cl.Job, Tick: cl.Tick + 1, At: next, Deadline: next + int64(time.Hour)})
		for _, p := range peer {
			c.fakeCoord.applyLocked("peer", []fsm.Claim{p})
		}
		c.fakeCoord.mu.Unlock()
	}
	c.mu.Unlock()
	return c.fakeCoord.Claim(ctx, claims, anyOrder)
}

func (c *overtakingCoord) overtaken() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first
}

// TestOvertakenClaim: a claim judged after a later tick of its job was
// granted. If its own instant never was granted, the cluster grants it
// then, and the tick runs late rather than nowhere. A plain claim, as a node
// sends while some server is of an older build, cannot be granted then: the
// tick ran nowhere and is counted in Stats.Missed, reported to OnMissed and
// to OnError wrapped in ErrMissed, and logged at Warn. If another node was
// granted the instant, the claim is only refused.
func TestOvertakenClaim(t *testing.T) {
	const interval = 50 * time.Millisecond
	for _, tt := range []struct {
		name     string
		ranFirst bool
		plain    bool
		reason   fsm.Reason
	}{
		{"no node ran it", false, false, fsm.ReasonGranted},
		{"no node ran it, plain claim", false, true, fsm.ReasonSuperseded},
		{"another node ran it", true, false, fsm.ReasonTaken},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out syncBuffer
			logger := hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Warn})
			coord := &overtakingCoord{fakeCoord: newFakeCoord("me", "me"), interval: interval, ranFirst: tt.ranFirst}
			coord.plainClaims = tt.plain
			var errs errorLog
			var hook missedLog
			var runs runLog
			s := newScheduler(coord, logger)
			s.onError = errs.add
			s.hooks.OnMissed = hook.add
			if err := s.Add(Job{Name: "j", Interval: interval, Func: runs.record()}); err != nil {
				t.Fatal(err)
			}
			stop := startRun(t, s)
			// Three more claims after the overtaken one: its answer has been
			// handled by then, since claims of one job go out in order.
			eventually(t, waitTimeout, func() bool { return len(coord.claimCalls()) >= 4 }, "fewer than 4 claims")
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			first := coord.claimCalls()[0]
			if got := first.res.Outcomes[0].Reason; got != tt.reason {
				t.Fatalf("overtaken claim answered %v, want %v", got, tt.reason)
			}
			ranHere := slices.ContainsFunc(runs.snapshot(), func(r Run) bool { return r.At.UnixNano() == coord.overtaken() })
			if ranHere != (tt.reason == fsm.ReasonGranted) {
				t.Errorf("overtaken instant ran here: %v, want %v", ranHere, tt.reason == fsm.ReasonGranted)
			}
			st := s.Stats()["j"]
			missed := hook.snapshot()
			if tt.reason != fsm.ReasonSuperseded {
				if st.Missed != 0 || len(missed) != 0 || countErrors(errs.get("j"), ErrMissed) != 0 || out.String() != "" {
					t.Errorf("a tick that ran counted as missed: Missed = %d, OnMissed %v, OnError %v, log %q", st.Missed, missed, errs.get("j"), out.String())
				}
				return
			}
			if st.Missed != 1 || len(missed) != 1 || missed[0].UnixNano() != coord.overtaken() {
				t.Errorf("Missed = %d, OnMissed %v; want the overtaken instant %v once", st.Missed, missed, time.Unix(0, coord.overtaken()))
			}
			if n := countErrors(errs.get("j"), ErrMissed); n != 1 {
				t.Errorf("OnError got %d ErrMissed, want 1", n)
			}
			if !strings.Contains(out.String(), "claims refused after a later tick was granted; ticks missed") {
				t.Errorf("no Warn line for the missed tick; log:\n%s", out.String())
			}
		})
	}
}
