package fsm_test

import (
	"testing"

	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/fsm"
)

func exclusive(job string, k int64, ttl int64) fsm.Claim {
	c := claim(job, k)
	c.Exclusive = true
	c.LeaseTTL = ttl
	return c
}

func applyRuns(t *testing.T, f *fsm.FSM, index uint64, now int64, u fsm.RunUpdate) *fsm.RunUpdateResult {
	t.Helper()
	out := apply(t, f, index, now, fsm.EncodeRunUpdate(u))
	res, ok := out.(*fsm.RunUpdateResult)
	if !ok {
		t.Fatalf("Apply(runs) returned %T (%v)", out, out)
	}
	return res
}

func TestRunLeaseBlocksTheNextTickUntilDone(t *testing.T) {
	f := fsm.New(nil)
	ttl := 3 * sec
	if o := applyClaims(t, f, 1, at(1), "a", exclusive("j", 1, ttl)).Outcomes[0]; !o.Granted() {
		t.Fatalf("first exclusive claim: %v", o.Reason)
	}
	// Tick 2 while tick 1 still runs on a: refused on any node.
	if o := applyClaims(t, f, 2, at(2), "b", exclusive("j", 2, ttl)).Outcomes[0]; o.Reason != fsm.ReasonBusy || o.Holder != "a" {
		t.Fatalf("claim while running = %v holder %q, want busy held by a", o.Reason, o.Holder)
	}
	// A non-exclusive claim (AllowOverlap) is not blocked.
	if o := applyClaims(t, f, 3, at(2), "b", claim("other", 2)).Outcomes[0]; !o.Granted() {
		t.Fatalf("non-exclusive claim of another job: %v", o.Reason)
	}
	// Only the holder's Done for its own tick ends the lease.
	applyRuns(t, f, 4, at(2), fsm.RunUpdate{Node: "b", Done: []fsm.RunRef{{Job: "j", Tick: 1}}})
	if o := applyClaims(t, f, 5, at(3), "b", exclusive("j", 3, ttl)).Outcomes[0]; o.Reason != fsm.ReasonBusy {
		t.Fatalf("Done from a non-holder ended the lease: %v", o.Reason)
	}
	applyRuns(t, f, 6, at(3), fsm.RunUpdate{Node: "a", Done: []fsm.RunRef{{Job: "j", Tick: 1}}})
	if o := applyClaims(t, f, 7, at(3), "b", exclusive("j", 3, ttl)).Outcomes[0]; !o.Granted() || o.Token != 7 {
		t.Fatalf("claim after Done = %+v, want granted with token 7", o)
	}
}

func TestRunLeaseRenewAndExpiry(t *testing.T) {
	f := fsm.New(nil)
	ttl := 2 * sec
	applyClaims(t, f, 1, at(1), "a", exclusive("j", 1, ttl))
	// Renewed at at(1)+1.5s, so it lives to at(1)+3.5s.
	res := applyRuns(t, f, 2, at(1)+3*sec/2, fsm.RunUpdate{Node: "a", Renew: []fsm.RunRef{{Job: "j", Tick: 1}, {Job: "j", Tick: 9}}})
	if len(res.Renewed) != 2 || !res.Renewed[0] || res.Renewed[1] {
		t.Fatalf("renewed = %v, want [true false] (the second names a tick a does not hold)", res.Renewed)
	}
	if o := applyClaims(t, f, 3, at(4)-sec/2, "b", exclusive("j", 4, ttl)).Outcomes[0]; o.Reason != fsm.ReasonBusy {
		t.Fatalf("claim before the renewed expiry = %v, want busy", o.Reason)
	}
	// A crashed holder never renews: the lease runs out and the job is free.
	if o := applyClaims(t, f, 4, at(5), "b", exclusive("j", 5, ttl)).Outcomes[0]; !o.Granted() {
		t.Fatalf("claim after expiry = %v, want granted", o.Reason)
	}
	// The old holder's late renewal fails.
	if res := applyRuns(t, f, 5, at(5), fsm.RunUpdate{Node: "a", Renew: []fsm.RunRef{{Job: "j", Tick: 1}}}); res.Renewed[0] {
		t.Fatal("a lost lease was renewed")
	}
}

// TestNewTermKeepsRunLeaseExpiry checks that a new term does not extend a
// run lease. Its holder stops the run by its own deadline, which no
// extension can move, so an extension would only block the job after the
// election: for a full TTL from the new leader's first entry when the
// holder was the leader that died.
func TestNewTermKeepsRunLeaseExpiry(t *testing.T) {
	f := fsm.New(nil)
	ttl := 2 * sec
	cmd := fsm.EncodeClaims(fsm.ClaimBatch{Node: "a", Claims: []fsm.Claim{exclusive("j", 1, ttl)}})
	fsm.Stamp(cmd, timeAt(at(1)))
	f.Apply(&raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: cmd})
	// The new leader's first entry comes 1.9 s later by its clock.
	now := at(1) + 19*sec/10
	reg := fsm.EncodeRegistration(fsm.Registration{Node: "c", Add: []string{"x"}})
	fsm.Stamp(reg, timeAt(now))
	f.Apply(&raft.Log{Index: 2, Term: 2, Type: raft.LogCommand, Data: reg})
	st, _ := f.Job("j")
	if st.RunExpires != at(1)+ttl {
		t.Fatalf("run lease expires at +%dms after the grant once a new term began, want its own TTL (+%dms)", (st.RunExpires-at(1))/1e6, ttl/1e6)
	}
	// Once it has run out, the next tick is granted on another node.
	if o := applyClaimsInTerm(t, f, 3, 2, at(1)+ttl, "b", exclusive("j", 3, ttl)).Outcomes[0]; !o.Granted() {
		t.Fatalf("claim at the lease's own expiry in the new term = %v, want granted", o.Reason)
	}
}

func applyClaimsInTerm(t *testing.T, f *fsm.FSM, index, term uint64, now int64, node string, claims ...fsm.Claim) *fsm.ClaimResult {
	t.Helper()
	cmd := fsm.EncodeClaims(fsm.ClaimBatch{Node: node, Claims: claims})
	if err := fsm.Stamp(cmd, timeAt(now)); err != nil {
		t.Fatal(err)
	}
	res, ok := f.Apply(&raft.Log{Index: index, Term: term, Type: raft.LogCommand, Data: cmd}).(*fsm.ClaimResult)
	if !ok {
		t.Fatalf("Apply(claims) did not return a claim result")
	}
	return res
}
