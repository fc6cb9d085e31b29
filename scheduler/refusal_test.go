package scheduler

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/fsm"
)

// refusingCoord answers every claim with one refusal reason, as a leader
// whose clock lags this node's would answer with ReasonEarly.
type refusingCoord struct {
	*fakeCoord
	reason fsm.Reason
	calls  chan int
}

func (c *refusingCoord) Claim(_ context.Context, claims []fsm.Claim, _ bool) (*fsm.ClaimResult, error) {
	res := &fsm.ClaimResult{Index: 1, Outcomes: make([]fsm.Outcome, len(claims))}
	for i := range res.Outcomes {
		res.Outcomes[i] = fsm.Outcome{Reason: c.reason}
	}
	select {
	case c.calls <- len(claims):
	default:
	}
	return res, nil
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRefusalThatCannotResolveIsVisible checks that claims refused as early
// or invalid, which will be refused again on every tick, are counted in
// Stats and logged at Warn, once per job however many ticks they cost, and
// that losing a tick to another node is neither.
func TestRefusalThatCannotResolveIsVisible(t *testing.T) {
	const interval = 20 * time.Millisecond
	for _, tt := range []struct {
		reason  fsm.Reason
		visible bool
	}{
		{fsm.ReasonEarly, true},
		{fsm.ReasonInvalid, true},
		{fsm.ReasonTaken, false},
	} {
		t.Run(tt.reason.String(), func(t *testing.T) {
			var out syncBuffer
			logger := hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Warn})
			coord := &refusingCoord{fakeCoord: newFakeCoord("me", "me"), reason: tt.reason, calls: make(chan int, 100)}
			s := newScheduler(coord, logger)
			if err := s.Add(Job{Name: "j", Interval: interval, Func: noop}); err != nil {
				t.Fatal(err)
			}
			stop := startRun(t, s)
			claims := 0
			for claims < 5 {
				claims += <-coord.calls
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			refused := s.Stats()["j"].Refused
			warns := strings.Count(out.String(), "claim refused")
			if !tt.visible {
				if refused != 0 || warns != 0 {
					t.Errorf("a tick lost to another node counted %d refusals and logged %d warnings, want none:\n%s", refused, warns, out.String())
				}
				return
			}
			if refused < 5 {
				t.Errorf("Stats().Refused = %d after at least 5 refused claims", refused)
			}
			if warns != 1 || !strings.Contains(out.String(), "[WARN]") || !strings.Contains(out.String(), "reason="+tt.reason.String()) {
				t.Errorf("want exactly one WARN line naming reason %s, got %d:\n%s", tt.reason, warns, out.String())
			}
		})
	}
}
