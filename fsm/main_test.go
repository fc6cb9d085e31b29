package fsm_test

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"

	"github.com/interlockraft/interlock/fsm"
)

// TestMain checks for leaked goroutines after every test in the package,
// including the package-internal ones (they share this test binary).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const sec = int64(time.Second)

// t0 is an arbitrary, fixed epoch for the tests' ticks.
const t0 = int64(1_700_000_000) * sec

// at returns the scheduled instant of tick k (one-second interval after t0).
func at(k int64) int64 { return t0 + k*sec }

// claim returns the claim for tick k of job with a one-second window: it may
// be granted from at(k)-1s (the tolerated lead) to at(k)+1s (the deadline).
func claim(job string, k int64) fsm.Claim {
	return fsm.Claim{Job: job, Tick: k, At: at(k), Deadline: at(k) + sec}
}

// applyAnyOrder is applyClaims for a batch that may be granted out of
// order (fsm.CommandClaimAnyOrder).
func applyAnyOrder(t testing.TB, f *fsm.FSM, index uint64, now int64, node string, claims ...fsm.Claim) *fsm.ClaimResult {
	t.Helper()
	out := apply(t, f, index, now, fsm.EncodeClaims(fsm.ClaimBatch{Node: node, Claims: claims, AnyOrder: true}))
	res, ok := out.(*fsm.ClaimResult)
	if !ok || len(res.Outcomes) != len(claims) {
		t.Fatalf("Apply(any-order claims) at %d returned %T (%v), want a *fsm.ClaimResult with %d outcomes", index, out, out, len(claims))
	}
	return res
}

// apply stamps cmd with now and applies it at index.
func apply(t testing.TB, f *fsm.FSM, index uint64, now int64, cmd []byte) interface{} {
	t.Helper()
	if err := fsm.Stamp(cmd, time.Unix(0, now)); err != nil {
		t.Fatalf("Stamp: %v", err)
	}
	return f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: cmd})
}

// applyClaims applies one claim batch and returns its result, failing the
// test unless the result is well formed.
func applyClaims(t testing.TB, f *fsm.FSM, index uint64, now int64, node string, claims ...fsm.Claim) *fsm.ClaimResult {
	t.Helper()
	out := apply(t, f, index, now, fsm.EncodeClaims(fsm.ClaimBatch{Node: node, Claims: claims}))
	res, ok := out.(*fsm.ClaimResult)
	if !ok {
		t.Fatalf("Apply(claims) at %d returned %T (%v), want *fsm.ClaimResult", index, out, out)
	}
	if res.Index != index {
		t.Fatalf("ClaimResult.Index = %d, want %d", res.Index, index)
	}
	if len(res.Outcomes) != len(claims) {
		t.Fatalf("got %d outcomes for %d claims", len(res.Outcomes), len(claims))
	}
	return res
}

// register applies one registration, failing the test unless Apply returns nil.
func register(t testing.TB, f *fsm.FSM, index uint64, r fsm.Registration) {
	t.Helper()
	if out := apply(t, f, index, t0, fsm.EncodeRegistration(r)); out != nil {
		t.Fatalf("Apply(registration) at %d returned %v, want nil", index, out)
	}
}
