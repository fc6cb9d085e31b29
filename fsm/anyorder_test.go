package fsm_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/fsm"
)

// anyOrderStep is one claim batch of TestAnyOrderGrantRules, applied at
// index (its position in the case's steps) + 1; plain sends it as
// CommandClaim rather than CommandClaimAnyOrder.
type anyOrderStep struct {
	node   string
	now    int64
	plain  bool
	claims []fsm.Claim
	want   []fsm.Outcome
}

func TestAnyOrderGrantRules(t *testing.T) {
	const ms = sec / 1000
	const ttl = 10 * sec
	granted := func(token uint64, node string, k int64) []fsm.Outcome {
		return []fsm.Outcome{{Reason: fsm.ReasonGranted, Token: token, Holder: node, At: at(k)}}
	}
	tests := []struct {
		name  string
		steps []anyOrderStep
		// latest is job a's latest grant after every step, without its
		// record: a late grant must leave it alone.
		latest fsm.JobState
	}{
		{
			name: "an instant never granted is granted after a later one",
			steps: []anyOrderStep{
				{"n1", at(10), false, []fsm.Claim{claim("a", 10)}, granted(1, "n1", 10)},
				{"n2", at(10), false, []fsm.Claim{claim("a", 9)}, granted(2, "n2", 9)},
			},
			latest: fsm.JobState{LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10)},
		},
		{
			name: "a late grant is granted once, and repeated to its holder",
			steps: []anyOrderStep{
				{"n1", at(10), false, []fsm.Claim{claim("a", 10)}, granted(1, "n1", 10)},
				{"n2", at(10), false, []fsm.Claim{claim("a", 9)}, granted(2, "n2", 9)},
				{"n3", at(10), false, []fsm.Claim{claim("a", 9)}, []fsm.Outcome{{Reason: fsm.ReasonTaken, Holder: "n1", At: at(10)}}},
				{"n2", at(10), false, []fsm.Claim{claim("a", 9)}, []fsm.Outcome{{Reason: fsm.ReasonRepeat, Token: 2, Holder: "n1", At: at(10)}}},
				{"n1", at(10), false, []fsm.Claim{claim("a", 10)}, []fsm.Outcome{{Reason: fsm.ReasonRepeat, Token: 1, Holder: "n1", At: at(10)}}},
			},
			latest: fsm.JobState{LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10)},
		},
		{
			name: "a plain claim for an instant the record knows never granted is superseded",
			steps: []anyOrderStep{
				{"n1", at(10), false, []fsm.Claim{claim("a", 10)}, granted(1, "n1", 10)},
				{"n2", at(10), true, []fsm.Claim{claim("a", 9)}, []fsm.Outcome{{Reason: fsm.ReasonSuperseded, Holder: "n1", At: at(10)}}},
			},
			latest: fsm.JobState{LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10)},
		},
		{
			// A plain claim starts no record, so what came before a later
			// any-order grant is unknown.
			name: "a job granted by plain claims only knows nothing before its latest grant",
			steps: []anyOrderStep{
				{"n1", at(10), true, []fsm.Claim{claim("a", 10)}, granted(1, "n1", 10)},
				{"n2", at(10), false, []fsm.Claim{claim("a", 9)}, []fsm.Outcome{{Reason: fsm.ReasonTaken, Holder: "n1", At: at(10)}}},
			},
			latest: fsm.JobState{LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10)},
		},
		{
			name: "a late claim past its deadline is expired",
			steps: []anyOrderStep{
				{"n1", at(10), false, []fsm.Claim{claim("a", 10)}, granted(1, "n1", 10)},
				{"n2", at(10) + ms, false, []fsm.Claim{claim("a", 8)}, []fsm.Outcome{{Reason: fsm.ReasonExpired, Holder: "n1", At: at(10)}}},
			},
			latest: fsm.JobState{LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10)},
		},
		{
			// Both grants would share the entry's index as their token.
			name: "a late claim in the entry that granted the later instant is a duplicate",
			steps: []anyOrderStep{
				{"n1", at(10), false, []fsm.Claim{claim("a", 10), claim("a", 9)}, []fsm.Outcome{
					{Reason: fsm.ReasonGranted, Token: 1, Holder: "n1", At: at(10)},
					{Reason: fsm.ReasonDuplicate, Holder: "n1", At: at(10)},
				}},
				{"n1", at(10), false, []fsm.Claim{claim("a", 9)}, granted(2, "n1", 9)},
			},
			latest: fsm.JobState{LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10)},
		},
		{
			name: "a later claim in the entry that made a late grant is a duplicate",
			steps: []anyOrderStep{
				{"n1", at(10), false, []fsm.Claim{claim("a", 10)}, granted(1, "n1", 10)},
				{"n2", at(10), false, []fsm.Claim{claim("a", 9), claim("a", 11)}, []fsm.Outcome{
					{Reason: fsm.ReasonGranted, Token: 2, Holder: "n2", At: at(9)},
					{Reason: fsm.ReasonDuplicate, Holder: "n1", At: at(10)},
				}},
			},
			latest: fsm.JobState{LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10)},
		},
		{
			name: "an exclusive late claim waits for the latest run's lease",
			steps: []anyOrderStep{
				{"n1", at(10), false, []fsm.Claim{exclusive("a", 10, ttl)}, granted(1, "n1", 10)},
				{"n2", at(10), false, []fsm.Claim{exclusive("a", 9, ttl)}, []fsm.Outcome{{Reason: fsm.ReasonBusy, Holder: "n1", At: at(10)}}},
			},
			latest: fsm.JobState{LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10), RunExpires: at(20), RunTTL: 10 * sec},
		},
		{
			name: "a late claim that is not exclusive waits for an earlier late grant's lease",
			steps: []anyOrderStep{
				{"n1", at(9), false, []fsm.Claim{claim("a", 10)}, granted(1, "n1", 10)},
				{"n2", at(9), false, []fsm.Claim{exclusive("a", 8, ttl)}, granted(2, "n2", 8)},
				{"n3", at(9), false, []fsm.Claim{claim("a", 9)}, []fsm.Outcome{{Reason: fsm.ReasonBusy, Holder: "n2", At: at(8)}}},
			},
			latest: fsm.JobState{LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(9)},
		},
		{
			name: "a late grant's run lease holds off the next exclusive claim",
			steps: []anyOrderStep{
				{"n1", at(10), false, []fsm.Claim{claim("a", 10)}, granted(1, "n1", 10)},
				{"n2", at(10), false, []fsm.Claim{exclusive("a", 9, ttl)}, granted(2, "n2", 9)},
				{"n1", at(11), false, []fsm.Claim{exclusive("a", 11, ttl)}, []fsm.Outcome{{Reason: fsm.ReasonBusy, Holder: "n2", At: at(9)}}},
				{"n1", at(11), false, []fsm.Claim{claim("a", 11)}, granted(4, "n1", 11)},
			},
			latest: fsm.JobState{LastAt: at(11), LastTick: 11, Holder: "n1", Token: 4, GrantedAt: at(11)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fsm.New(nil)
			for i, s := range tt.steps {
				index := uint64(i + 1)
				var res *fsm.ClaimResult
				if s.plain {
					res = applyClaims(t, f, index, s.now, s.node, s.claims...)
				} else {
					res = applyAnyOrder(t, f, index, s.now, s.node, s.claims...)
				}
				if !slices.Equal(res.Outcomes, s.want) {
					t.Errorf("step %d outcomes:\n got %+v\nwant %+v", index, res.Outcomes, s.want)
				}
			}
			st, _ := f.Job("a")
			if got := fsm.WithoutRecord(st); got != tt.latest {
				t.Errorf("job a:\n got %+v\nwant %+v", got, tt.latest)
			}
		})
	}
}

// TestLateGrantRunLease renews and ends a late grant's run lease by its
// holder and tick, as for the latest grant, and checks that a node release
// ends it too.
func TestLateGrantRunLease(t *testing.T) {
	const ttl = 2 * sec
	st := fsm.New(nil)
	applyAnyOrder(t, st, 1, at(10), "n1", claim("a", 10))
	if o := applyAnyOrder(t, st, 2, at(10), "n2", exclusive("a", 9, ttl)).Outcomes[0]; o.Reason != fsm.ReasonGranted {
		t.Fatalf("late exclusive claim: %+v", o)
	}
	// Only the holder, for its own tick.
	res := applyRuns(t, st, 3, at(11), fsm.RunUpdate{Node: "n2", Renew: []fsm.RunRef{{Job: "a", Tick: 9}, {Job: "a", Tick: 10}}})
	if !slices.Equal(res.Renewed, []bool{true, false}) {
		t.Fatalf("renewed = %v, want [true false]", res.Renewed)
	}
	if res := applyRuns(t, st, 4, at(11), fsm.RunUpdate{Node: "n1", Renew: []fsm.RunRef{{Job: "a", Tick: 9}}}); res.Renewed[0] {
		t.Fatalf("another node renewed the late grant's lease")
	}
	// Renewed at at(11), so it lives to at(13).
	if got := applyAnyOrder(t, st, 5, at(12)+sec/2, "n1", exclusive("a", 12, ttl)).Outcomes[0].Reason; got != fsm.ReasonBusy {
		t.Fatalf("exclusive claim while the renewed late lease is live: %v, want busy", got)
	}
	applyRuns(t, st, 6, at(12)+sec/2, fsm.RunUpdate{Node: "n2", Done: []fsm.RunRef{{Job: "a", Tick: 9}}})
	if o := applyAnyOrder(t, st, 7, at(12)+sec/2, "n1", exclusive("a", 12, ttl)).Outcomes[0]; o.Reason != fsm.ReasonGranted {
		t.Fatalf("exclusive claim after the late run ended: %+v, want granted", o)
	}

	// A node release ends a late grant's lease too.
	rel := fsm.New(nil)
	applyAnyOrder(t, rel, 1, at(10), "n1", claim("a", 10))
	applyAnyOrder(t, rel, 2, at(10), "n2", exclusive("a", 9, ttl))
	apply(t, rel, 3, at(10), fsm.EncodeNodeRelease("n2"))
	if o := applyAnyOrder(t, rel, 4, at(11), "n1", exclusive("a", 11, ttl)).Outcomes[0]; o.Reason != fsm.ReasonGranted {
		t.Fatalf("exclusive claim after the late holder was released: %+v, want granted", o)
	}
}

// TestAnyOrderStateIsAFunctionOfTheLog applies one log to a state machine
// from the start and to others restored from snapshots taken along the
// way, including one taken before any record was known (format 2, as
// older builds write). Grants out of order depend on the records, so
// every replica must hold the same records at the same index, whatever
// snapshot it started from.
func TestAnyOrderStateIsAFunctionOfTheLog(t *testing.T) {
	type entry struct {
		now  int64
		data []byte
	}
	plain := func(node string, cs ...fsm.Claim) []byte {
		return fsm.EncodeClaims(fsm.ClaimBatch{Node: node, Claims: cs})
	}
	anyOrder := func(node string, cs ...fsm.Claim) []byte {
		return fsm.EncodeClaims(fsm.ClaimBatch{Node: node, Claims: cs, AnyOrder: true})
	}
	wide := func(job string, k int64) fsm.Claim {
		c := claim(job, k)
		c.Deadline = at(k) + 30*sec
		return c
	}
	log := []entry{
		{at(1), plain("n1", wide("a", 1), wide("b", 1))},
		{at(2), plain("n2", wide("a", 2))},
		{at(4), plain("n1", wide("a", 4), wide("b", 4))},
		{at(5), anyOrder("n2", wide("a", 5))},
		{at(6), anyOrder("n3", wide("a", 3))}, // unknown below 4: taken
		{at(7), anyOrder("n1", wide("a", 7), wide("b", 7))},
		{at(8), anyOrder("n2", wide("a", 6), wide("b", 5))},
		{at(9), plain("n3", wide("a", 9))},
		{at(10), anyOrder("n1", wide("a", 8), wide("b", 6))},
		{at(11), anyOrder("n2", wide("a", 11))},
		{at(12), anyOrder("n3", wide("a", 10))},
	}
	full := fsm.New(nil)
	snaps := map[int][]byte{}
	for i, e := range log {
		apply(t, full, uint64(i+1), e.now, slices.Clone(e.data))
		snaps[i+1] = snapshotBytes(t, full)
	}
	if snaps[3][0] != 2 {
		t.Fatalf("snapshot before any any-order claim has version %d, want 2", snaps[3][0])
	}
	for from := 1; from < len(log); from++ {
		f := fsm.New(nil)
		if err := restore(t, f, snaps[from]); err != nil {
			t.Fatalf("restore at %d: %v", from, err)
		}
		for i := from; i < len(log); i++ {
			f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: stamped(t, log[i].now, log[i].data)})
		}
		if got := snapshotBytes(t, f); !bytes.Equal(got, snaps[len(log)]) {
			t.Errorf("replica restored at index %d diverged from the one that applied the whole log", from)
		}
	}
	st, _ := full.Job("a")
	// Kept: 11 (latest), 10, 9, 8, 7; 6 is the floor. 3 was never known.
	for _, k := range []int64{3, 6, 8, 10} {
		granted, known := st.Granted(at(k))
		if want := k >= 8; granted != want || known != want {
			t.Errorf("Granted(tick %d) = %v, %v; want %v, %v", k, granted, known, want, want)
		}
	}
}

// stamped returns a copy of cmd stamped with now.
func stamped(t *testing.T, now int64, cmd []byte) []byte {
	t.Helper()
	c := slices.Clone(cmd)
	if err := fsm.Stamp(c, timeAt(now)); err != nil {
		t.Fatal(err)
	}
	return c
}
