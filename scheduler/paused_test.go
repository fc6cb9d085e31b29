package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/fsm"
	"github.com/interlockraft/interlock/internal/seam"
)

// pausingCoord is a fakeCoord with the replicated pause state of a real
// state machine, which is all of seam.Controller the scheduler's claims
// look at.
type pausingCoord struct{ *fakeCoord }

var _ seam.Controller = pausingCoord{}

func (p pausingCoord) setPaused(paused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	data := fsm.EncodePause(fsm.Pause{Job: "j", Paused: paused})
	if err := fsm.Stamp(data, time.Now()); err != nil {
		panic(err)
	}
	p.index++
	p.fsm.Apply(&raft.Log{Index: p.index, Term: 1, Type: raft.LogCommand, Data: data})
}

func (p pausingCoord) SetPaused(context.Context, string, bool) error { return nil }
func (p pausingCoord) RunNow(context.Context, string) (*fsm.RunNowResult, error) {
	return &fsm.RunNowResult{Refused: fsm.ReasonInvalid}, nil
}
func (p pausingCoord) Paused(job string) bool                       { return p.fsm.Paused(job) }
func (p pausingCoord) RunNowRequests() map[string]fsm.RunNowRequest { return nil }
func (p pausingCoord) RunNowChanged() <-chan struct{}               { return nil }
func (p pausingCoord) History(string) []fsm.HistoryEntry            { return nil }

// countClaims returns how many claims of job the coordinator received.
func countClaims(f *fakeCoord, job string) int {
	n := 0
	for _, c := range f.claimCalls() {
		for _, cl := range c.claims {
			if cl.Job == job {
				n++
			}
		}
	}
	return n
}

// TestPausedJobSendsNoClaims pauses a job in the replicated state and
// checks that its ticks pass without a single claim (the cluster would
// refuse each one), that they count neither as missed nor as skipped, and
// that the claims resume with the job.
func TestPausedJobSendsNoClaims(t *testing.T) {
	const interval = 20 * time.Millisecond
	coord := pausingCoord{newFakeCoord("me", "me")}
	coord.setPaused(true)
	var log runLog
	s := newScheduler(coord, nil)
	if err := s.Add(Job{Name: "j", Interval: interval, Func: log.record()}); err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, s)
	defer stop()
	// Let at least five ticks pass while paused.
	var first time.Time
	eventually(t, waitTimeout, func() bool { first = s.Jobs()[0].Next; return !first.IsZero() }, "no tick queued")
	eventually(t, waitTimeout, func() bool { return s.Jobs()[0].Next.After(first.Add(5 * interval)) }, "the scheduler did not move on")
	if n := countClaims(coord.fakeCoord, "j"); n != 0 {
		t.Fatalf("a paused job sent %d claims over 5 ticks; want none", n)
	}
	if st := s.Stats()["j"]; st.Missed != 0 || st.Skipped != 0 || st.Runs != 0 {
		t.Fatalf("paused ticks counted: %+v", st)
	}
	coord.setPaused(false)
	eventually(t, waitTimeout, func() bool { return log.len() >= 2 }, "no runs after resume")
	if n := countClaims(coord.fakeCoord, "j"); n < 2 {
		t.Errorf("%d claims after resume; want one per tick", n)
	}
}
