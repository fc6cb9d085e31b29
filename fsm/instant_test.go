package fsm_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/interlockraft/interlock/fsm"
)

// claimEvery returns the claim for the tick of job at instant atNs under
// interval, with a window of one interval, as the scheduler makes it.
func claimEvery(job string, interval time.Duration, atNs int64) fsm.Claim {
	return fsm.Claim{Job: job, Tick: atNs / int64(interval), At: atNs, Deadline: atNs + int64(interval)}
}

// TestIntervalChangeKeepsGranting changes a job's interval from 250ms to
// 500ms and from 1m to 1h: the tick indexes of the new interval are far
// below the old ones, but the instants go on, so every new tick is granted.
func TestIntervalChangeKeepsGranting(t *testing.T) {
	tests := []struct {
		name     string
		from, to time.Duration
	}{
		{"250ms to 500ms", 250 * time.Millisecond, 500 * time.Millisecond},
		{"1m to 1h", time.Minute, time.Hour},
		{"1h to 1m", time.Hour, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fsm.New(nil)
			index := uint64(0)
			base := t0 - t0%int64(tt.to) // a multiple of both intervals
			at := base - 4*int64(tt.from)
			for i := 0; i < 4; i++ {
				index++
				res := applyClaims(t, f, index, at, "n1", claimEvery("j", tt.from, at))
				if !res.Outcomes[0].Granted() {
					t.Fatalf("old interval, instant %d: %s, want granted", at, res.Outcomes[0].Reason)
				}
				at += int64(tt.from)
			}
			for i := 0; i < 4; i++ {
				index++
				res := applyClaims(t, f, index, at, "n2", claimEvery("j", tt.to, at))
				if o := res.Outcomes[0]; o.Reason != fsm.ReasonGranted || o.Token != index {
					t.Fatalf("new interval, instant %d: %+v, want granted with token %d", at, o, index)
				}
				at += int64(tt.to)
			}
		})
	}
}

// TestMixedIntervalsGrantEachInstantOnce plays a rolling deploy: n1 still
// claims every 250ms, n2 every 500ms, for the same job. Every instant both
// claim (with different tick indexes) is granted once, and an instant
// before the latest grant is never granted.
func TestMixedIntervalsGrantEachInstantOnce(t *testing.T) {
	const fast, slow = 250 * time.Millisecond, 500 * time.Millisecond
	f := fsm.New(nil)
	index := uint64(0)
	granted := map[int64]string{}
	start := t0 - t0%int64(slow)
	for at := start; at < start+int64(20*slow); at += int64(fast) {
		nodes := []string{"n1"}
		claims := map[string]fsm.Claim{"n1": claimEvery("j", fast, at)}
		if (at-start)%int64(slow) == 0 {
			claims["n2"] = claimEvery("j", slow, at)
			// Alternate who comes first, as fallback timing would.
			if (at/int64(slow))%2 == 0 {
				nodes = []string{"n2", "n1"}
			} else {
				nodes = append(nodes, "n2")
			}
		}
		for _, n := range nodes {
			index++
			o := applyClaims(t, f, index, at+int64(time.Millisecond), n, claims[n]).Outcomes[0]
			if !o.Granted() {
				continue
			}
			if prev, ok := granted[at]; ok {
				t.Fatalf("instant %d granted twice: to %s and %s", at, prev, n)
			}
			granted[at] = n
		}
		if _, ok := granted[at]; !ok {
			t.Fatalf("instant %d granted to nobody", at)
		}
	}
}

// TestRepeatInOneMergedEntry applies one entry holding the same claim batch
// twice, as when a follower's abandoned forward and its retry, or a demoted
// leader's in-flight batch and its re-forward, are merged into one entry.
// Both copies must learn the one grant, with the entry's index as token.
func TestRepeatInOneMergedEntry(t *testing.T) {
	f := fsm.New(nil)
	batch := fsm.EncodeClaims(fsm.ClaimBatch{Node: "n1", Claims: []fsm.Claim{claim("a", 10), claim("b", 10)}})
	other := fsm.EncodeClaims(fsm.ClaimBatch{Node: "n2", Claims: []fsm.Claim{claim("a", 10), claim("b", 11)}})
	out := apply(t, f, 7, at(10), fsm.EncodeBatch([][]byte{batch, other, batch}))
	res, ok := out.(*fsm.BatchResult)
	if !ok || len(res.Results) != 3 {
		t.Fatalf("Apply(batch) = %T %v, want a *fsm.BatchResult of 3", out, out)
	}
	for i, r := range res.Results {
		cr, ok := r.(*fsm.ClaimResult)
		if !ok || len(cr.Outcomes) != 2 {
			t.Fatalf("result %d = %T %v, want a *fsm.ClaimResult of 2", i, r, r)
		}
		for j, o := range cr.Outcomes {
			if i == 1 {
				// Another node, for the instant granted or a later one: one
				// entry must never hand out a second grant for a job.
				if o.Granted() {
					t.Errorf("n2's claim %d in the same entry: %s, want refused", j, o.Reason)
				}
				continue
			}
			if !o.Granted() || o.Token != 7 || o.Holder != "n1" {
				t.Errorf("copy %d of n1's batch, claim %d: %+v, want granted with token 7", i, j, o)
			}
		}
	}
}

// legacySnapshot encodes a version-1 snapshot, as written before the tick
// instant was kept: one job (name, last tick index, holder, token, grant
// time, no run lease) and nothing else.
func legacySnapshot(applied uint64, job string, tick int64, holder string, token uint64, grantedAt int64) []byte {
	b := []byte{1}
	b = binary.AppendUvarint(b, applied)
	b = binary.AppendUvarint(b, 1)
	b = binary.AppendUvarint(b, uint64(len(job)))
	b = append(b, job...)
	b = binary.AppendVarint(b, tick)
	b = binary.AppendUvarint(b, uint64(len(holder)))
	b = append(b, holder...)
	b = binary.AppendUvarint(b, token)
	b = binary.AppendVarint(b, grantedAt)
	b = binary.AppendVarint(b, 0)  // run lease expiry
	b = binary.AppendVarint(b, 0)  // run lease TTL
	b = binary.AppendUvarint(b, 0) // nodes
	b = binary.AppendUvarint(b, 1) // term
	b = binary.AppendUvarint(b, 0) // locks
	b = binary.AppendUvarint(b, 0) // finished owners
	return b
}

// TestRestoreVersionOneSnapshot restores a snapshot of the old format:
// the instant it granted stays refused, and the job goes on with at most
// one tick lost.
func TestRestoreVersionOneSnapshot(t *testing.T) {
	f := fsm.New(nil)
	// The tick at at(10), whose index under the tests' one-second interval
	// is at(10)/sec, granted 300ms late.
	k := at(10) / sec
	if err := restore(t, f, legacySnapshot(5, "a", k, "n1", 4, at(10)+300*int64(time.Millisecond))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	now := at(10) + 400*int64(time.Millisecond)
	if o := applyClaims(t, f, 6, now, "n2", claim("a", 10)).Outcomes[0]; o.Granted() {
		t.Errorf("claim of the instant the old snapshot granted: %+v, want refused", o)
	}
	if o := applyClaims(t, f, 7, at(12), "n2", claim("a", 12)).Outcomes[0]; o.Reason != fsm.ReasonGranted || o.Token != 7 {
		t.Errorf("claim two ticks later: %+v, want granted with token 7", o)
	}
}
