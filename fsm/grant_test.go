package fsm_test

import (
	"maps"
	"slices"
	"testing"

	"github.com/interlockraft/interlock/fsm"
)

// grantStep is one claim batch; it is applied at index (its position in the
// case's steps) + 1.
type grantStep struct {
	node   string
	now    int64
	claims []fsm.Claim
	want   []fsm.Outcome
}

func TestGrantRules(t *testing.T) {
	const ms = sec / 1000
	tests := []struct {
		name  string
		steps []grantStep
		// jobs is the state after every step: refused claims must leave it
		// untouched.
		jobs map[string]fsm.JobState
	}{
		{
			name: "first claim is granted with the entry index as token",
			steps: []grantStep{
				{"n1", at(10), []fsm.Claim{claim("a", 10)}, []fsm.Outcome{{Reason: fsm.ReasonGranted, Token: 1, Holder: "n1", At: at(10)}}},
			},
			jobs: map[string]fsm.JobState{"a": {LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10)}},
		},
		{
			name: "same tick from another node is taken",
			steps: []grantStep{
				{"n1", at(10), []fsm.Claim{claim("a", 10)}, []fsm.Outcome{{Reason: fsm.ReasonGranted, Token: 1, Holder: "n1", At: at(10)}}},
				{"n2", at(10) + ms, []fsm.Claim{claim("a", 10)}, []fsm.Outcome{{Reason: fsm.ReasonTaken, Holder: "n1", At: at(10)}}},
			},
			jobs: map[string]fsm.JobState{"a": {LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10)}},
		},
		{
			name: "older tick that was granted, claimed by another node, is taken",
			steps: []grantStep{
				{"n1", at(9), []fsm.Claim{claim("a", 9)}, []fsm.Outcome{{Reason: fsm.ReasonGranted, Token: 1, Holder: "n1", At: at(9)}}},
				{"n1", at(10), []fsm.Claim{claim("a", 10)}, []fsm.Outcome{{Reason: fsm.ReasonGranted, Token: 2, Holder: "n1", At: at(10)}}},
				{"n2", at(10), []fsm.Claim{claim("a", 9)}, []fsm.Outcome{{Reason: fsm.ReasonTaken, Holder: "n1", At: at(10)}}},
			},
			jobs: map[string]fsm.JobState{"a": {LastAt: at(10), LastTick: 10, Holder: "n1", Token: 2, GrantedAt: at(10)}},
		},
		{
			// Plain claims keep no record of earlier grants (see
			// TestAnyOrderGrantRules), so an instant before the latest
			// grant may have been granted and is refused as taken.
			name: "older tick never granted, after a later one was, is taken for plain claims",
			steps: []grantStep{
				{"n1", at(10), []fsm.Claim{claim("a", 10)}, []fsm.Outcome{{Reason: fsm.ReasonGranted, Token: 1, Holder: "n1", At: at(10)}}},
				{"n2", at(10), []fsm.Claim{claim("a", 9)}, []fsm.Outcome{{Reason: fsm.ReasonTaken, Holder: "n1", At: at(10)}}},
			},
			jobs: map[string]fsm.JobState{"a": {LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10)}},
		},
		{
			name: "holder repeating its granted tick gets the original token",
			steps: []grantStep{
				{"n1", at(10), []fsm.Claim{claim("a", 10)}, []fsm.Outcome{{Reason: fsm.ReasonGranted, Token: 1, Holder: "n1", At: at(10)}}},
				{"n1", at(10) + 100*ms, []fsm.Claim{claim("a", 10)}, []fsm.Outcome{{Reason: fsm.ReasonRepeat, Token: 1, Holder: "n1", At: at(10)}}},
			},
			jobs: map[string]fsm.JobState{"a": {LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10)}},
		},
		{
			// A node that lost the reply may retry late; it must still learn
			// that it holds the tick rather than be told it expired.
			name: "repeat is answered even after the deadline",
			steps: []grantStep{
				{"n1", at(10), []fsm.Claim{claim("a", 10)}, []fsm.Outcome{{Reason: fsm.ReasonGranted, Token: 1, Holder: "n1", At: at(10)}}},
				{"n1", at(20), []fsm.Claim{claim("a", 10)}, []fsm.Outcome{{Reason: fsm.ReasonRepeat, Token: 1, Holder: "n1", At: at(10)}}},
			},
			jobs: map[string]fsm.JobState{"a": {LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10)}},
		},
		{
			name: "claim after its deadline is expired",
			steps: []grantStep{
				{"n1", at(10) + sec + 1, []fsm.Claim{claim("a", 10)}, []fsm.Outcome{{Reason: fsm.ReasonExpired}}},
			},
			jobs: map[string]fsm.JobState{},
		},
		{
			name: "claim exactly at its deadline is granted",
			steps: []grantStep{
				{"n1", at(10) + sec, []fsm.Claim{claim("a", 10)}, []fsm.Outcome{{Reason: fsm.ReasonGranted, Token: 1, Holder: "n1", At: at(10)}}},
			},
			jobs: map[string]fsm.JobState{"a": {LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10) + sec}},
		},
		{
			name: "expired claim reports the current holder",
			steps: []grantStep{
				{"n1", at(10), []fsm.Claim{claim("a", 10)}, []fsm.Outcome{{Reason: fsm.ReasonGranted, Token: 1, Holder: "n1", At: at(10)}}},
				{"n2", at(12) + 1, []fsm.Claim{claim("a", 11)}, []fsm.Outcome{{Reason: fsm.ReasonExpired, Holder: "n1", At: at(10)}}},
			},
			jobs: map[string]fsm.JobState{"a": {LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10)}},
		},
		{
			name: "claim more than one window ahead of the leader is early",
			steps: []grantStep{
				{"n1", at(10) - sec - 1, []fsm.Claim{claim("a", 10)}, []fsm.Outcome{{Reason: fsm.ReasonEarly}}},
			},
			jobs: map[string]fsm.JobState{},
		},
		{
			name: "claim exactly one window ahead is granted",
			steps: []grantStep{
				{"n1", at(10) - sec, []fsm.Claim{claim("a", 10)}, []fsm.Outcome{{Reason: fsm.ReasonGranted, Token: 1, Holder: "n1", At: at(10)}}},
			},
			jobs: map[string]fsm.JobState{"a": {LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10) - sec}},
		},
		{
			name: "early claim reports the current holder",
			steps: []grantStep{
				{"n1", at(10), []fsm.Claim{claim("a", 10)}, []fsm.Outcome{{Reason: fsm.ReasonGranted, Token: 1, Holder: "n1", At: at(10)}}},
				{"n2", at(10), []fsm.Claim{claim("a", 15)}, []fsm.Outcome{{Reason: fsm.ReasonEarly, Holder: "n1", At: at(10)}}},
			},
			jobs: map[string]fsm.JobState{"a": {LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10)}},
		},
		{
			name: "second claim for a job in one batch is a duplicate",
			steps: []grantStep{
				{"n1", at(10), []fsm.Claim{claim("a", 10), claim("a", 11)}, []fsm.Outcome{
					{Reason: fsm.ReasonGranted, Token: 1, Holder: "n1", At: at(10)},
					{Reason: fsm.ReasonDuplicate, Holder: "n1", At: at(10)},
				}},
			},
			jobs: map[string]fsm.JobState{"a": {LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10)}},
		},
		{
			// The same grant, reported to both copies with the one token: a
			// copy refused here would make its node miss the tick.
			name: "same node, job and instant twice in one batch is a repeat of the one grant",
			steps: []grantStep{
				{"n1", at(10), []fsm.Claim{claim("a", 10), claim("a", 10)}, []fsm.Outcome{
					{Reason: fsm.ReasonGranted, Token: 1, Holder: "n1", At: at(10)},
					{Reason: fsm.ReasonRepeat, Token: 1, Holder: "n1", At: at(10)},
				}},
			},
			jobs: map[string]fsm.JobState{"a": {LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10)}},
		},
		{
			name: "duplicate does not affect other jobs in the batch",
			steps: []grantStep{
				{"n1", at(10), []fsm.Claim{claim("a", 10), claim("a", 11), claim("b", 10)}, []fsm.Outcome{
					{Reason: fsm.ReasonGranted, Token: 1, Holder: "n1", At: at(10)},
					{Reason: fsm.ReasonDuplicate, Holder: "n1", At: at(10)},
					{Reason: fsm.ReasonGranted, Token: 1, Holder: "n1", At: at(10)},
				}},
			},
			jobs: map[string]fsm.JobState{
				"a": {LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10)},
				"b": {LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10)},
			},
		},
		{
			name: "empty job is invalid",
			steps: []grantStep{
				{"n1", at(10), []fsm.Claim{claim("", 10)}, []fsm.Outcome{{Reason: fsm.ReasonInvalid}}},
			},
			jobs: map[string]fsm.JobState{},
		},
		{
			name: "empty node is invalid",
			steps: []grantStep{
				{"", at(10), []fsm.Claim{claim("a", 10)}, []fsm.Outcome{{Reason: fsm.ReasonInvalid}}},
			},
			jobs: map[string]fsm.JobState{},
		},
		{
			name: "deadline before the tick is invalid",
			steps: []grantStep{
				{"n1", at(10), []fsm.Claim{{Job: "a", Tick: 10, At: at(10), Deadline: at(10) - 1}}, []fsm.Outcome{{Reason: fsm.ReasonInvalid}}},
			},
			jobs: map[string]fsm.JobState{},
		},
		{
			name: "deadline equal to the tick is valid",
			steps: []grantStep{
				{"n1", at(10), []fsm.Claim{{Job: "a", Tick: 10, At: at(10), Deadline: at(10)}}, []fsm.Outcome{{Reason: fsm.ReasonGranted, Token: 1, Holder: "n1", At: at(10)}}},
			},
			jobs: map[string]fsm.JobState{"a": {LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10)}},
		},
		{
			name: "invalid claim does not block a valid one in the same batch",
			steps: []grantStep{
				{"n1", at(10), []fsm.Claim{claim("", 10), claim("a", 10)}, []fsm.Outcome{
					{Reason: fsm.ReasonInvalid},
					{Reason: fsm.ReasonGranted, Token: 1, Holder: "n1", At: at(10)},
				}},
			},
			jobs: map[string]fsm.JobState{"a": {LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10)}},
		},
		{
			name: "newer tick after an older one is granted with a new token",
			steps: []grantStep{
				{"n1", at(10), []fsm.Claim{claim("a", 10)}, []fsm.Outcome{{Reason: fsm.ReasonGranted, Token: 1, Holder: "n1", At: at(10)}}},
				{"n2", at(11), []fsm.Claim{claim("a", 11)}, []fsm.Outcome{{Reason: fsm.ReasonGranted, Token: 2, Holder: "n2", At: at(11)}}},
			},
			jobs: map[string]fsm.JobState{"a": {LastAt: at(11), LastTick: 11, Holder: "n2", Token: 2, GrantedAt: at(11)}},
		},
		{
			name: "holder of an old tick claiming a newer one gets a new token",
			steps: []grantStep{
				{"n1", at(10), []fsm.Claim{claim("a", 10)}, []fsm.Outcome{{Reason: fsm.ReasonGranted, Token: 1, Holder: "n1", At: at(10)}}},
				{"n1", at(11), []fsm.Claim{claim("a", 11)}, []fsm.Outcome{{Reason: fsm.ReasonGranted, Token: 2, Holder: "n1", At: at(11)}}},
				{"n2", at(11), []fsm.Claim{claim("a", 10)}, []fsm.Outcome{{Reason: fsm.ReasonTaken, Holder: "n1", At: at(11)}}},
			},
			jobs: map[string]fsm.JobState{"a": {LastAt: at(11), LastTick: 11, Holder: "n1", Token: 2, GrantedAt: at(11)}},
		},
		{
			name: "jobs are independent",
			steps: []grantStep{
				{"n1", at(10), []fsm.Claim{claim("a", 10)}, []fsm.Outcome{{Reason: fsm.ReasonGranted, Token: 1, Holder: "n1", At: at(10)}}},
				{"n2", at(10), []fsm.Claim{claim("b", 10)}, []fsm.Outcome{{Reason: fsm.ReasonGranted, Token: 2, Holder: "n2", At: at(10)}}},
			},
			jobs: map[string]fsm.JobState{
				"a": {LastAt: at(10), LastTick: 10, Holder: "n1", Token: 1, GrantedAt: at(10)},
				"b": {LastAt: at(10), LastTick: 10, Holder: "n2", Token: 2, GrantedAt: at(10)},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fsm.New(nil)
			for i, s := range tt.steps {
				index := uint64(i + 1)
				res := applyClaims(t, f, index, s.now, s.node, s.claims...)
				if !slices.Equal(res.Outcomes, s.want) {
					t.Errorf("step %d outcomes:\n got %+v\nwant %+v", index, res.Outcomes, s.want)
				}
			}
			got := f.Jobs()
			for name, st := range got {
				got[name] = fsm.WithoutRecord(st)
			}
			if !maps.Equal(got, tt.jobs) {
				t.Errorf("Jobs():\n got %+v\nwant %+v", got, tt.jobs)
			}
		})
	}
}

func TestOutcomeGranted(t *testing.T) {
	tests := []struct {
		reason fsm.Reason
		want   bool
	}{
		{fsm.ReasonGranted, true},
		{fsm.ReasonRepeat, true},
		{fsm.ReasonTaken, false},
		{fsm.ReasonExpired, false},
		{fsm.ReasonEarly, false},
		{fsm.ReasonDuplicate, false},
		{fsm.ReasonInvalid, false},
	}
	for _, tt := range tests {
		if got := (fsm.Outcome{Reason: tt.reason}).Granted(); got != tt.want {
			t.Errorf("Outcome{Reason: %s}.Granted() = %v, want %v", tt.reason, got, tt.want)
		}
	}
}

// TestTokensIncreasePerJob grants ever newer ticks of two jobs from
// alternating nodes, with unrelated entries in between, and checks that every
// grant's token is its entry's index and strictly above the job's previous one.
func TestTokensIncreasePerJob(t *testing.T) {
	f := fsm.New(nil)
	last := map[string]uint64{}
	index := uint64(0)
	for k := int64(1); k <= 50; k++ {
		for _, job := range []string{"a", "b"} {
			index++
			node := []string{"n1", "n2", "n3"}[(int(k)+len(job))%3]
			res := applyClaims(t, f, index, at(k), node, claim(job, k))
			o := res.Outcomes[0]
			if o.Reason != fsm.ReasonGranted {
				t.Fatalf("%s@%d: reason %s, want granted", job, k, o.Reason)
			}
			if o.Token != index {
				t.Fatalf("%s@%d: token %d, want entry index %d", job, k, o.Token, index)
			}
			if o.Token <= last[job] {
				t.Fatalf("%s@%d: token %d not above previous %d", job, k, o.Token, last[job])
			}
			last[job] = o.Token
			if st, ok := f.Job(job); !ok || st.Token != o.Token || st.LastTick != k || st.Holder != node {
				t.Fatalf("Job(%q) = %+v, %v; want token %d tick %d holder %s", job, st, ok, o.Token, k, node)
			}
			// A refused claim in between consumes an index without a grant.
			index++
			if r := applyClaims(t, f, index, at(k), "other", claim(job, k)); r.Outcomes[0].Reason != fsm.ReasonTaken {
				t.Fatalf("competing claim for %s@%d: reason %s, want taken", job, k, r.Outcomes[0].Reason)
			}
		}
	}
}
