package fsm_test

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/fsm"
)

func applyRunNow(t *testing.T, f *fsm.FSM, index uint64, now int64, job string) *fsm.RunNowResult {
	t.Helper()
	out := apply(t, f, index, now, fsm.EncodeRunNow(job))
	res, ok := out.(*fsm.RunNowResult)
	if !ok {
		t.Fatalf("Apply(run-now) at %d returned %T (%v), want *fsm.RunNowResult", index, out, out)
	}
	return res
}

func applyPause(t *testing.T, f *fsm.FSM, index uint64, job string, paused bool) {
	t.Helper()
	if out := apply(t, f, index, t0, fsm.EncodePause(fsm.Pause{Job: job, Paused: paused})); out != nil {
		t.Fatalf("Apply(pause) at %d returned %v, want nil", index, out)
	}
}

// TestPauseRefusesClaims checks that a paused job's claims are refused on
// every node until it is resumed, and that pausing one job leaves others
// alone.
func TestPauseRefusesClaims(t *testing.T) {
	f := fsm.New(nil)
	applyPause(t, f, 1, "j", true)
	if !f.Paused("j") || f.Paused("other") {
		t.Fatalf("Paused(j)=%v Paused(other)=%v, want true false", f.Paused("j"), f.Paused("other"))
	}
	tests := []struct {
		index uint64
		node  string
		c     fsm.Claim
		want  fsm.Reason
	}{
		{2, "a", claim("j", 1), fsm.ReasonPaused},
		{3, "b", exclusive("j", 1, 3*sec), fsm.ReasonPaused},
		{4, "a", claim("other", 1), fsm.ReasonGranted},
	}
	for _, tt := range tests {
		if o := applyClaims(t, f, tt.index, at(1), tt.node, tt.c).Outcomes[0]; o.Reason != tt.want || o.Token != 0 && tt.want != fsm.ReasonGranted {
			t.Errorf("claim %s by %s while j paused = %v (token %d), want %v", tt.c.Job, tt.node, o.Reason, o.Token, tt.want)
		}
	}
	applyPause(t, f, 5, "j", false)
	if f.Paused("j") {
		t.Fatal("Paused(j) after resume = true")
	}
	if o := applyClaims(t, f, 6, at(2), "a", claim("j", 2)).Outcomes[0]; !o.Granted() || o.Token != 6 {
		t.Fatalf("claim after resume = %+v, want granted with token 6", o)
	}
}

// TestRunNow walks a run-now request through its cases.
func TestRunNow(t *testing.T) {
	f := fsm.New(nil)
	if r := applyRunNow(t, f, 1, at(1), "j"); r.Refused != fsm.ReasonInvalid || r.Request.ID != 0 {
		t.Fatalf("run-now of an unregistered job = %+v, want refused invalid", r)
	}
	register(t, f, 2, fsm.Registration{Node: "a", Add: []string{"j"}})
	register(t, f, 3, fsm.Registration{Node: "b", Add: []string{"j"}})
	// The job's latest grant is at(5), in the leader's future: the request's
	// instant must still come after it.
	applyClaims(t, f, 4, at(4)+sec/2, "a", claim("j", 5))
	r := applyRunNow(t, f, 5, at(4)+sec/2, "j")
	if r.Refused != fsm.ReasonGranted || r.Request != (fsm.RunNowRequest{ID: 5, At: at(5) + 1}) {
		t.Fatalf("run-now = %+v, want request 5 at at(5)+1", r)
	}
	// A second request while one is pending joins it.
	if r2 := applyRunNow(t, f, 6, at(5), "j"); r2.Request != r.Request {
		t.Fatalf("second run-now = %+v, want the pending %+v", r2, r.Request)
	}
	if got := f.RunNowRequests()["j"]; got != r.Request {
		t.Fatalf("RunNowRequests()[j] = %+v, want %+v", got, r.Request)
	}
	now := fsm.Claim{Job: "j", Tick: -int64(r.Request.ID), At: r.Request.At, Deadline: r.Request.Deadline()}
	tests := []struct {
		name  string
		index uint64
		node  string
		want  fsm.Reason
		token uint64
	}{
		{"first claim", 7, "b", fsm.ReasonGranted, 7},
		{"retry by the holder", 8, "b", fsm.ReasonRepeat, 7},
		{"another node", 9, "a", fsm.ReasonTaken, 0},
	}
	for _, tt := range tests {
		o := applyClaims(t, f, tt.index, at(5)+sec/4, tt.node, now).Outcomes[0]
		if o.Reason != tt.want || o.Token != tt.token {
			t.Errorf("%s: %v token %d, want %v token %d", tt.name, o.Reason, o.Token, tt.want, tt.token)
		}
	}
	if _, ok := f.RunNowRequests()["j"]; ok {
		t.Fatal("the request is still pending after its grant")
	}
	// The next scheduled tick is granted as usual, with a higher token.
	if o := applyClaims(t, f, 10, at(6), "a", claim("j", 6)).Outcomes[0]; !o.Granted() || o.Token != 10 {
		t.Fatalf("next tick after run-now = %+v, want granted with token 10", o)
	}

	// A paused job refuses run-now.
	applyPause(t, f, 11, "j", true)
	if r := applyRunNow(t, f, 12, at(7), "j"); r.Refused != fsm.ReasonPaused {
		t.Fatalf("run-now of a paused job = %+v, want refused paused", r)
	}
	applyPause(t, f, 13, "j", false)

	// A request nobody claims expires: refused after its window, and
	// forgotten by the next sweep.
	r = applyRunNow(t, f, 14, at(8), "j")
	late := fsm.Claim{Job: "j", Tick: -14, At: r.Request.At, Deadline: r.Request.Deadline()}
	if o := applyClaims(t, f, 15, r.Request.Deadline()+1, "a", late).Outcomes[0]; o.Reason != fsm.ReasonExpired {
		t.Fatalf("claim after the window = %v, want expired", o.Reason)
	}
	applyClaims(t, f, 16, r.Request.Deadline()+2*int64(fsm.RunNowWindow), "a", claim("other", 1))
	if _, ok := f.RunNowRequests()["j"]; ok {
		t.Fatal("an expired request is still pending after a sweep")
	}
}

// TestHistory checks that finished runs are kept per job, newest
// HistoryLen, with the reporting node and truncated error text, and that
// reports for unknown jobs are dropped.
func TestHistory(t *testing.T) {
	f := fsm.New(nil)
	applyClaims(t, f, 1, at(1), "a", claim("j", 1))
	long := strings.Repeat("é", fsm.MaxErrorBytes) // two bytes each
	var idx uint64 = 2
	for k := int64(1); k <= fsm.HistoryLen+5; k++ {
		entry := fsm.HistoryEntry{Node: "forged", Token: uint64(k), Tick: k, At: at(k), Start: at(k) + 7, Duration: k, Result: fsm.ResultError, Error: long}
		applyRuns(t, f, idx, at(1), fsm.RunUpdate{Node: "a", Finished: []fsm.Finished{{Job: "j", Entry: entry}, {Job: "unknown", Entry: entry}}})
		idx++
	}
	h := f.History("j")
	if len(h) != fsm.HistoryLen {
		t.Fatalf("len(History) = %d, want %d", len(h), fsm.HistoryLen)
	}
	for i, e := range h {
		wantTick := int64(i + 6)
		if e.Tick != wantTick || e.Node != "a" || e.Start != at(wantTick)+7 || e.Result != fsm.ResultError {
			t.Errorf("History[%d] = %+v, want tick %d from node a", i, e, wantTick)
		}
		if len(e.Error) > fsm.MaxErrorBytes || !utf8.ValidString(e.Error) || !strings.HasSuffix(e.Error, "…") {
			t.Errorf("History[%d].Error has %d bytes (valid UTF-8 %v), want at most %d ending in …", i, len(e.Error), utf8.ValidString(e.Error), fsm.MaxErrorBytes)
		}
	}
	if got := f.History("unknown"); len(got) != 0 {
		t.Errorf("History(unknown) = %+v, want none", got)
	}
}

// TestJobControlSurvivesSnapshot checks that paused jobs, pending run-now
// requests and histories are in snapshots.
func TestJobControlSurvivesSnapshot(t *testing.T) {
	f := populated(t)
	applyPause(t, f, 8, "beta", true)
	if r := applyRunNow(t, f, 9, at(12), "gamma"); r.Request.ID != 9 {
		t.Fatalf("run-now = %+v, want request 9", r)
	}
	applyRuns(t, f, 10, at(12), fsm.RunUpdate{Node: "n2", Finished: []fsm.Finished{{Job: "alpha", Entry: fsm.HistoryEntry{Token: 4, Tick: 11, At: at(11), Start: at(11), Duration: 5, Result: fsm.ResultPanic, Error: "boom"}}}})
	snap := snapshotBytes(t, f)
	g := fsm.New(nil)
	if err := restore(t, g, snap); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !g.Paused("beta") || g.Paused("alpha") {
		t.Errorf("restored Paused(beta)=%v Paused(alpha)=%v, want true false", g.Paused("beta"), g.Paused("alpha"))
	}
	if got := g.RunNowRequests()["gamma"]; got.ID != 9 {
		t.Errorf("restored run-now request = %+v, want ID 9", got)
	}
	if h := g.History("alpha"); len(h) != 1 || h[0].Node != "n2" || h[0].Error != "boom" || h[0].Result != fsm.ResultPanic {
		t.Errorf("restored History(alpha) = %+v", h)
	}
	if !bytes.Equal(snapshotBytes(t, g), snap) {
		t.Error("snapshot of the restored state differs from the original")
	}
}

// TestRunUpdateEncoding checks that an update without finished runs
// encodes as older versions did, and that one with them round-trips
// through a batch.
func TestRunUpdateEncoding(t *testing.T) {
	u := fsm.RunUpdate{Node: "a", Renew: []fsm.RunRef{{Job: "j", Tick: 1}}, Done: []fsm.RunRef{{Job: "k", Tick: 2}}}
	plain := fsm.EncodeRunUpdate(u)
	// node, then two lists of one (job, tick) each, and nothing after.
	if want := 10 + 2 + 1 + 2 + 1 + 1 + 2 + 1; len(plain) != want {
		t.Fatalf("update without finished runs is %d bytes, want %d (the older encoding)", len(plain), want)
	}
	u.Finished = []fsm.Finished{{Job: "k", Entry: fsm.HistoryEntry{Token: 3, Tick: 2, Result: fsm.ResultSuccess}}}
	withRuns := fsm.EncodeRunUpdate(u)
	if !bytes.HasPrefix(withRuns, plain) {
		t.Fatal("finished runs are not appended after the older encoding")
	}
	f := fsm.New(nil)
	applyClaims(t, f, 1, at(1), "a", claim("k", 2))
	apply(t, f, 2, at(1), fsm.EncodeBatch([][]byte{withRuns}))
	if h := f.History("k"); len(h) != 1 || h[0].Token != 3 || h[0].Node != "a" {
		t.Fatalf("History(k) after a batched update = %+v", h)
	}
	for n := len(plain) + 1; n < len(withRuns); n++ {
		out := f.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: withRuns[:n]})
		if _, ok := out.(error); !ok {
			t.Errorf("update truncated to %d of %d bytes applied as %T, want an error", n, len(withRuns), out)
		}
	}
}

// TestRunNowChangedWakesOnNewRequests checks that the channel from
// RunNowChanged is closed by a newly recorded run-now request and by a
// restore, and by nothing else: a Scheduler with nothing pending waits on
// it instead of polling.
func TestRunNowChangedWakesOnNewRequests(t *testing.T) {
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	f := fsm.New(nil)
	ch := f.RunNowChanged()
	applyRunNow(t, f, 1, at(1), "j") // refused: no node registered j
	register(t, f, 2, fsm.Registration{Node: "a", Add: []string{"j"}})
	applyClaims(t, f, 3, at(1), "a", claim("j", 1))
	if closed(ch) {
		t.Fatal("RunNowChanged closed by a refused request, a registration or a claim")
	}
	applyRunNow(t, f, 4, at(2), "j")
	if !closed(ch) {
		t.Fatal("RunNowChanged not closed by a recorded request")
	}
	ch = f.RunNowChanged()
	if closed(ch) {
		t.Fatal("RunNowChanged after a wake-up is already closed")
	}
	applyRunNow(t, f, 5, at(2), "j") // joins the pending request
	if closed(ch) {
		t.Fatal("RunNowChanged closed by a request that joined the pending one")
	}
	g := fsm.New(nil)
	gch := g.RunNowChanged()
	if err := restore(t, g, snapshotBytes(t, f)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !closed(gch) {
		t.Fatal("RunNowChanged not closed by a restore")
	}
}
