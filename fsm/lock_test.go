package fsm_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/fsm"
)

// applyTerm stamps cmd with now and applies it at index in term. The
// package's apply helper leaves Term at zero, which never changes term.
func applyTerm(t testing.TB, f *fsm.FSM, index, term uint64, now int64, cmd []byte) interface{} {
	t.Helper()
	if err := fsm.Stamp(cmd, time.Unix(0, now)); err != nil {
		t.Fatalf("Stamp: %v", err)
	}
	return f.Apply(&raft.Log{Index: index, Term: term, Type: raft.LogCommand, Data: cmd})
}

// lockRes applies a lock op and returns its *fsm.LockResult, failing the test
// on any other result type.
func lockRes(t testing.TB, f *fsm.FSM, index, term uint64, now int64, typ fsm.CommandType, op fsm.LockOp) fsm.LockResult {
	t.Helper()
	out := applyTerm(t, f, index, term, now, fsm.EncodeLockOp(typ, op))
	res, ok := out.(*fsm.LockResult)
	if !ok || res == nil {
		t.Fatalf("Apply(%s %+v) at %d returned %T (%v), want *fsm.LockResult", typ, op, index, out, out)
	}
	return *res
}

// Shorthands for the ops of the table below. Owners are named after the
// node they run on (a1 on n1, b2 on n2, ...), as the cluster names them.
func acq(name, owner string, ttl int64) lockStep {
	return lockStep{typ: fsm.CommandLockAcquire, op: fsm.LockOp{Name: name, Owner: owner, Node: nodeOf(owner), TTL: ttl}}
}

func wait(name, owner string, ttl int64) lockStep {
	s := acq(name, owner, ttl)
	s.op.Wait = true
	return s
}

func renew(name, owner string) lockStep {
	return lockStep{typ: fsm.CommandLockRenew, op: fsm.LockOp{Name: name, Owner: owner, Node: nodeOf(owner)}}
}

func release(name, owner string) lockStep {
	return lockStep{typ: fsm.CommandLockRelease, op: fsm.LockOp{Name: name, Owner: owner, Node: nodeOf(owner)}}
}

func sweep() lockStep { return lockStep{special: fsm.EncodeLockExpire} }

func nodeRelease(node string) lockStep {
	return lockStep{special: func() []byte { return fsm.EncodeNodeRelease(node) }}
}

func nodeOf(owner string) string {
	if owner == "" {
		return "n?"
	}
	return "n" + owner[len(owner)-1:]
}

// lockStep is one entry of a lock history. It is applied at index (its
// position in the case's steps) + 1, at time now, in term (1 if zero).
type lockStep struct {
	typ     fsm.CommandType
	op      fsm.LockOp
	special func() []byte // expiry sweep or node release instead of op
	now     int64
	term    uint64
	want    fsm.LockResult // for typ; ignored for special
}

func (s lockStep) call(id uint64) lockStep           { s.op.Call = id; return s }
func (s lockStep) at(now int64) lockStep             { s.now = now; return s }
func (s lockStep) inTerm(term uint64) lockStep       { s.term = term; return s }
func (s lockStep) is(r fsm.LockResult) lockStep      { s.want = r; return s }
func (s lockStep) status(st fsm.LockStatus) lockStep { s.want = fsm.LockResult{Status: st}; return s }

// lockView is a comparable copy of a lock's state (nil and empty waiter
// lists are the same).
type lockView struct {
	Owner, Node string
	Token       uint64
	Expires     int64
	TTL         int64
	Waiters     string
}

func view(st fsm.LockState) lockView {
	w := ""
	for _, x := range st.Waiters {
		w += fmt.Sprintf("[%s@%s ttl=%d]", x.Owner, x.Node, x.TTL)
	}
	return lockView{st.Owner, st.Node, st.Token, st.Expires, st.TTL, w}
}

func waiters(ws ...fsm.Waiter) string { return view(fsm.LockState{Waiters: ws}).Waiters }

func wt(owner string, ttl int64) fsm.Waiter {
	return fsm.Waiter{Owner: owner, Node: nodeOf(owner), TTL: ttl}
}

// runLockSteps applies steps to a fresh FSM and checks every result.
func runLockSteps(t *testing.T, steps []lockStep) *fsm.FSM {
	t.Helper()
	f := fsm.New(nil)
	for i, s := range steps {
		index := uint64(i + 1)
		term := s.term
		if term == 0 {
			term = 1
		}
		now := s.now
		if now == 0 {
			now = t0
		}
		if s.special != nil {
			if out := applyTerm(t, f, index, term, now, s.special()); out != nil {
				t.Fatalf("step %d: Apply returned %v, want nil", index, out)
			}
			continue
		}
		if got := lockRes(t, f, index, term, now, s.typ, s.op); got != s.want {
			t.Fatalf("step %d (%s %s by %s): got %+v (%s), want %+v (%s)", index, s.typ, s.op.Name, s.op.Owner, got, got.Status, s.want, s.want.Status)
		}
	}
	return f
}

func TestLockRules(t *testing.T) {
	ttl := 10 * sec
	tests := []struct {
		name  string
		steps []lockStep
		// locks is the state of the named locks after every step; a nil
		// entry means the lock is free with no waiters (and forgotten).
		locks map[string]*lockView
		// refused owners must get LockLost for a later acquire.
		refused []string
	}{
		{
			name:  "acquire of a free lock is granted with the entry index as token",
			steps: []lockStep{acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl})},
			locks: map[string]*lockView{"x": {Owner: "a1", Node: "n1", Token: 1, Expires: t0 + ttl, TTL: ttl}},
		},
		{
			name: "acquire of a held lock without wait is busy and changes nothing",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				acq("x", "b2", ttl).at(t0 + sec).status(fsm.LockBusy),
			},
			locks: map[string]*lockView{"x": {Owner: "a1", Node: "n1", Token: 1, Expires: t0 + ttl, TTL: ttl}},
		},
		{
			name: "waiters queue and are handed the lock in FIFO order on release",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				wait("x", "b2", 3*sec).status(fsm.LockQueued),
				wait("x", "c3", 7*sec).status(fsm.LockQueued),
				// Queuing twice keeps one place.
				wait("x", "b2", 3*sec).status(fsm.LockQueued),
				release("x", "a1").at(t0 + 2*sec).status(fsm.LockReleased),
				// b2 now holds it: token = the release's index, its own TTL.
				renew("x", "b2").at(t0 + 2*sec).is(fsm.LockResult{Status: fsm.LockRenewed, Token: 5, Expires: t0 + 5*sec}),
				release("x", "b2").at(t0 + 3*sec).status(fsm.LockReleased),
				renew("x", "c3").at(t0 + 3*sec).is(fsm.LockResult{Status: fsm.LockRenewed, Token: 7, Expires: t0 + 10*sec}),
			},
			locks:   map[string]*lockView{"x": {Owner: "c3", Node: "n3", Token: 7, Expires: t0 + 10*sec, TTL: 7 * sec}},
			refused: []string{"a1", "b2"},
		},
		{
			name: "handoff sets expiry from the handoff entry's time and the waiter's TTL",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				wait("x", "b2", 4*sec).status(fsm.LockQueued),
				release("x", "a1").at(t0 + 5*sec).status(fsm.LockReleased),
			},
			locks: map[string]*lockView{"x": {Owner: "b2", Node: "n2", Token: 3, Expires: t0 + 9*sec, TTL: 4 * sec}},
		},
		{
			name: "re-acquire by the holder returns the same token without extending",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				acq("x", "a1", ttl).at(t0 + sec).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				wait("x", "a1", ttl).at(t0 + 2*sec).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
			},
			locks: map[string]*lockView{"x": {Owner: "a1", Node: "n1", Token: 1, Expires: t0 + ttl, TTL: ttl}},
		},
		{
			name: "a queued owner that is handed the lock gets it on a repeated acquire",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				wait("x", "b2", ttl).status(fsm.LockQueued),
				release("x", "a1").at(t0 + sec).status(fsm.LockReleased),
				wait("x", "b2", ttl).at(t0 + 2*sec).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 3, Expires: t0 + sec + ttl}),
			},
			locks: map[string]*lockView{"x": {Owner: "b2", Node: "n2", Token: 3, Expires: t0 + sec + ttl, TTL: ttl}},
		},
		{
			name: "renew before expiry extends from the entry's time and keeps the token",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				renew("x", "a1").at(t0 + ttl - 1).is(fsm.LockResult{Status: fsm.LockRenewed, Token: 1, Expires: t0 + 2*ttl - 1}),
				renew("x", "a1").at(t0 + ttl + sec).is(fsm.LockResult{Status: fsm.LockRenewed, Token: 1, Expires: t0 + 2*ttl + sec}),
			},
			locks: map[string]*lockView{"x": {Owner: "a1", Node: "n1", Token: 1, Expires: t0 + 2*ttl + sec, TTL: ttl}},
		},
		{
			name: "renew at or after expiry is lost and frees the lock",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				renew("x", "a1").at(t0 + ttl).status(fsm.LockLost),
				renew("x", "a1").at(t0 + ttl + sec).status(fsm.LockLost),
			},
			locks:   map[string]*lockView{"x": nil},
			refused: []string{"a1"},
		},
		{
			name: "renew after expiry is lost and the first waiter takes over",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				wait("x", "b2", ttl).status(fsm.LockQueued),
				renew("x", "a1").at(t0 + ttl + sec).status(fsm.LockLost),
			},
			locks:   map[string]*lockView{"x": {Owner: "b2", Node: "n2", Token: 3, Expires: t0 + ttl + sec + ttl, TTL: ttl}},
			refused: []string{"a1"},
		},
		{
			name: "renew by a waiter or a stranger is lost",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				wait("x", "b2", ttl).status(fsm.LockQueued),
				renew("x", "b2").status(fsm.LockLost),
				renew("x", "zz").status(fsm.LockLost),
			},
			locks: map[string]*lockView{"x": {Owner: "a1", Node: "n1", Token: 1, Expires: t0 + ttl, TTL: ttl, Waiters: waiters(wt("b2", ttl))}},
		},
		{
			name: "release by a non-holder is lost and the holder keeps the lock",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				release("x", "b2").at(t0 + sec).status(fsm.LockLost),
				renew("x", "a1").at(t0 + 2*sec).is(fsm.LockResult{Status: fsm.LockRenewed, Token: 1, Expires: t0 + 2*sec + ttl}),
			},
			locks: map[string]*lockView{"x": {Owner: "a1", Node: "n1", Token: 1, Expires: t0 + 2*sec + ttl, TTL: ttl}},
			// Releasing marks even a stranger's owner as finished.
			refused: []string{"b2"},
		},
		{
			name: "a stale holder's release after expiry and handoff is lost and frees nothing",
			steps: []lockStep{
				acq("x", "a1", sec).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + sec}),
				wait("x", "b2", ttl).status(fsm.LockQueued),
				sweep().at(t0 + 2*sec),
				release("x", "a1").at(t0 + 3*sec).status(fsm.LockLost),
			},
			locks:   map[string]*lockView{"x": {Owner: "b2", Node: "n2", Token: 3, Expires: t0 + 2*sec + ttl, TTL: ttl}},
			refused: []string{"a1"},
		},
		{
			// propose retries an entry whose reply was lost, so a release can
			// be applied twice; the repeat must get the first one's answer.
			// Another release call of the same lease is a second Unlock of a
			// released lease, and is told it is lost.
			name: "a retried release call is answered released, another call lost",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				wait("x", "b2", ttl).status(fsm.LockQueued),
				wait("x", "c3", ttl).status(fsm.LockQueued),
				release("x", "a1").call(71).status(fsm.LockReleased),
				release("x", "a1").call(71).at(t0 + sec).status(fsm.LockReleased),
				release("x", "a1").call(72).at(t0 + sec).status(fsm.LockLost),
				release("x", "a1").at(t0 + sec).status(fsm.LockLost),
				release("x", "a1").call(71).at(t0 + sec).status(fsm.LockReleased),
				release("x", "c3").call(91).at(t0 + sec).status(fsm.LockReleased),
				release("x", "c3").call(91).at(t0 + 2*sec).status(fsm.LockReleased),
				release("x", "c3").call(92).at(t0 + 2*sec).status(fsm.LockLost),
			},
			locks:   map[string]*lockView{"x": {Owner: "b2", Node: "n2", Token: 4, Expires: t0 + ttl, TTL: ttl}},
			refused: []string{"a1", "c3"},
		},
		{
			name: "a release without a call ID is not deduplicated",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				release("x", "a1").status(fsm.LockReleased),
				release("x", "a1").status(fsm.LockLost),
				release("x", "a1").call(5).status(fsm.LockLost),
			},
			locks:   map[string]*lockView{"x": nil},
			refused: []string{"a1"},
		},
		{
			name: "a repeated release of a lease that expired or was never held stays lost",
			steps: []lockStep{
				acq("x", "a1", sec).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + sec}),
				release("x", "a1").call(3).at(t0 + 2*sec).status(fsm.LockLost),
				release("x", "a1").call(3).at(t0 + 2*sec).status(fsm.LockLost),
				acq("x", "b2", ttl).at(t0 + 2*sec).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 4, Expires: t0 + 2*sec + ttl}),
				release("x", "zz").call(4).at(t0 + 3*sec).status(fsm.LockLost),
				release("x", "zz").call(4).at(t0 + 3*sec).status(fsm.LockLost),
			},
			locks:   map[string]*lockView{"x": {Owner: "b2", Node: "n2", Token: 4, Expires: t0 + 2*sec + ttl, TTL: ttl}},
			refused: []string{"a1", "zz"},
		},
		{
			name: "a waiter's release leaves the queue",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				wait("x", "b2", ttl).status(fsm.LockQueued),
				wait("x", "c3", ttl).status(fsm.LockQueued),
				release("x", "b2").status(fsm.LockReleased),
				release("x", "a1").at(t0 + sec).status(fsm.LockReleased),
			},
			locks:   map[string]*lockView{"x": {Owner: "c3", Node: "n3", Token: 5, Expires: t0 + sec + ttl, TTL: ttl}},
			refused: []string{"a1", "b2"},
		},
		{
			// A retried acquire still in flight when its Lock call gave up
			// and withdrew must not take the lock afterwards.
			name: "a finished owner's late acquire is lost",
			steps: []lockStep{
				release("x", "a1").status(fsm.LockLost), // withdrawal overtook the acquire
				acq("x", "a1", ttl).at(t0 + sec).status(fsm.LockLost),
				wait("x", "a1", ttl).at(t0 + sec).status(fsm.LockLost),
				acq("x", "b2", ttl).at(t0 + 2*sec).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 4, Expires: t0 + 2*sec + ttl}),
				release("x", "b2").at(t0 + 3*sec).status(fsm.LockReleased),
				acq("x", "b2", ttl).at(t0 + 4*sec).status(fsm.LockLost),
			},
			locks:   map[string]*lockView{"x": nil},
			refused: []string{"a1", "b2"},
		},
		{
			name: "a withdrawn waiter's late retry is lost",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				wait("x", "b2", ttl).status(fsm.LockQueued),
				release("x", "b2").status(fsm.LockReleased), // cancelled waiter
				wait("x", "b2", ttl).status(fsm.LockLost),   // its late retry
			},
			locks:   map[string]*lockView{"x": {Owner: "a1", Node: "n1", Token: 1, Expires: t0 + ttl, TTL: ttl}},
			refused: []string{"b2"},
		},
		{
			name: "expiry sweep before the deadline changes nothing",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				wait("x", "b2", ttl).status(fsm.LockQueued),
				sweep().at(t0 + ttl - 1),
			},
			locks: map[string]*lockView{"x": {Owner: "a1", Node: "n1", Token: 1, Expires: t0 + ttl, TTL: ttl, Waiters: waiters(wt("b2", ttl))}},
		},
		{
			name: "expiry sweep hands each expired lock to its first waiter",
			steps: []lockStep{
				acq("x", "a1", sec).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + sec}),
				wait("x", "b2", 2*sec).status(fsm.LockQueued),
				wait("x", "c3", 3*sec).status(fsm.LockQueued),
				acq("y", "d1", 2*sec).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 4, Expires: t0 + 2*sec}),
				acq("z", "e2", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 5, Expires: t0 + ttl}),
				wait("z", "f3", ttl).status(fsm.LockQueued),
				sweep().at(t0 + 2*sec), // x and y are due, z is not
			},
			locks: map[string]*lockView{
				"x": {Owner: "b2", Node: "n2", Token: 7, Expires: t0 + 4*sec, TTL: 2 * sec, Waiters: waiters(wt("c3", 3*sec))},
				"y": nil,
				"z": {Owner: "e2", Node: "n2", Token: 5, Expires: t0 + ttl, TTL: ttl, Waiters: waiters(wt("f3", ttl))},
			},
			refused: []string{"a1", "d1"},
		},
		{
			name: "an acquire after expiry takes the lock with a new token",
			steps: []lockStep{
				acq("x", "a1", sec).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + sec}),
				acq("x", "b2", sec).at(t0 + sec).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 2, Expires: t0 + 2*sec}),
			},
			locks:   map[string]*lockView{"x": {Owner: "b2", Node: "n2", Token: 2, Expires: t0 + 2*sec, TTL: sec}},
			refused: []string{"a1"},
		},
		{
			name: "node release frees the node's locks and queue places and hands off",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				acq("y", "b2", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 2, Expires: t0 + ttl}),
				wait("y", "c1", ttl).status(fsm.LockQueued),
				wait("y", "d3", ttl).status(fsm.LockQueued),
				wait("y", "e1", ttl).status(fsm.LockQueued),
				acq("z", "f1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 6, Expires: t0 + ttl}),
				wait("z", "g1", ttl).status(fsm.LockQueued),
				wait("z", "h2", 2*sec).status(fsm.LockQueued),
				acq("w", "i1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 9, Expires: t0 + ttl}),
				wait("w", "j1", ttl).status(fsm.LockQueued),
				nodeRelease("n1").at(t0 + sec),
			},
			locks: map[string]*lockView{
				"x": nil,
				"y": {Owner: "b2", Node: "n2", Token: 2, Expires: t0 + ttl, TTL: ttl, Waiters: waiters(wt("d3", ttl))},
				"z": {Owner: "h2", Node: "n2", Token: 11, Expires: t0 + 3*sec, TTL: 2 * sec},
				"w": nil,
			},
			refused: []string{"a1", "c1", "e1", "f1", "g1", "i1", "j1"},
		},
		{
			name: "node release of a node with nothing changes nothing",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				nodeRelease("n7").at(t0 + sec),
			},
			locks: map[string]*lockView{"x": {Owner: "a1", Node: "n1", Token: 1, Expires: t0 + ttl, TTL: ttl}},
		},
		{
			name: "a new term extends every lease to at least a full TTL",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				acq("y", "b2", 100*sec).at(t0 + sec).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 2, Expires: t0 + 101*sec}),
				wait("x", "c3", ttl).status(fsm.LockQueued),
				// The new leader's first entry comes 8s later by its clock:
				// both leases get a full TTL from it; the lease it grants
				// itself is not extended again.
				acq("v", "d1", sec).at(t0 + 8*sec).inTerm(2).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 4, Expires: t0 + 9*sec}),
			},
			locks: map[string]*lockView{
				"x": {Owner: "a1", Node: "n1", Token: 1, Expires: t0 + 8*sec + ttl, TTL: ttl, Waiters: waiters(wt("c3", ttl))},
				"y": {Owner: "b2", Node: "n2", Token: 2, Expires: t0 + 108*sec, TTL: 100 * sec},
				"v": {Owner: "d1", Node: "n1", Token: 4, Expires: t0 + 9*sec, TTL: sec},
			},
		},
		{
			name: "a new leader whose clock is behind does not shorten leases",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				acq("v", "d1", sec).at(t0 - 5*sec).inTerm(2).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 2, Expires: t0 - 4*sec}),
			},
			locks: map[string]*lockView{
				"x": {Owner: "a1", Node: "n1", Token: 1, Expires: t0 + ttl, TTL: ttl},
				"v": {Owner: "d1", Node: "n1", Token: 2, Expires: t0 - 4*sec, TTL: sec},
			},
		},
		{
			// The new leader's clock is past the old expiry (clock skew or a
			// long election); its first entry is a sweep. The lease is
			// extended before the sweep looks at it.
			name: "a new term's first entry, a sweep, does not expire a lease it extends",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				wait("x", "b2", ttl).status(fsm.LockQueued),
				sweep().at(t0 + ttl + 5*sec).inTerm(3),
				renew("x", "a1").at(t0 + ttl + 6*sec).inTerm(3).is(fsm.LockResult{Status: fsm.LockRenewed, Token: 1, Expires: t0 + 2*ttl + 6*sec}),
			},
			locks: map[string]*lockView{"x": {Owner: "a1", Node: "n1", Token: 1, Expires: t0 + 2*ttl + 6*sec, TTL: ttl, Waiters: waiters(wt("b2", ttl))}},
		},
		{
			name: "a renew as the new term's first entry succeeds even past the old expiry",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				renew("x", "a1").at(t0 + ttl + sec).inTerm(2).is(fsm.LockResult{Status: fsm.LockRenewed, Token: 1, Expires: t0 + 2*ttl + sec}),
			},
			locks: map[string]*lockView{"x": {Owner: "a1", Node: "n1", Token: 1, Expires: t0 + 2*ttl + sec, TTL: ttl}},
		},
		{
			name: "entries within one term do not extend leases",
			steps: []lockStep{
				acq("x", "a1", ttl).inTerm(2).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				acq("y", "b2", ttl).at(t0 + 5*sec).inTerm(2).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 2, Expires: t0 + 5*sec + ttl}),
				// An entry of an older term (never the case in Raft) does not
				// extend either.
				acq("z", "c3", ttl).at(t0 + 6*sec).inTerm(1).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 3, Expires: t0 + 6*sec + ttl}),
			},
			locks: map[string]*lockView{
				"x": {Owner: "a1", Node: "n1", Token: 1, Expires: t0 + ttl, TTL: ttl},
				"y": {Owner: "b2", Node: "n2", Token: 2, Expires: t0 + 5*sec + ttl, TTL: ttl},
				"z": {Owner: "c3", Node: "n3", Token: 3, Expires: t0 + 6*sec + ttl, TTL: ttl},
			},
		},
		{
			name: "invalid ops are refused and change nothing",
			steps: []lockStep{
				acq("x", "a1", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + ttl}),
				acq("", "b2", ttl).status(fsm.LockInvalid),
				acq("y", "", ttl).status(fsm.LockInvalid),
				acq("y", "b2", 0).status(fsm.LockInvalid),
				acq("y", "b2", -sec).status(fsm.LockInvalid),
				wait("x", "b2", 0).status(fsm.LockInvalid),
				renew("", "a1").status(fsm.LockInvalid),
				renew("x", "").status(fsm.LockInvalid),
				release("", "a1").status(fsm.LockInvalid),
				release("x", "").status(fsm.LockInvalid),
				// Invalid ops do not mark the owner finished: b2 may still take y.
				acq("y", "b2", ttl).is(fsm.LockResult{Status: fsm.LockAcquired, Token: 11, Expires: t0 + ttl}),
			},
			locks: map[string]*lockView{
				"x": {Owner: "a1", Node: "n1", Token: 1, Expires: t0 + ttl, TTL: ttl},
				"y": {Owner: "b2", Node: "n2", Token: 11, Expires: t0 + ttl, TTL: ttl},
				"":  nil,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := runLockSteps(t, tc.steps)
			for name, want := range tc.locks {
				st, ok := f.Lock(name)
				switch {
				case want == nil && ok:
					t.Errorf("lock %q: got %+v, want free and forgotten", name, view(st))
				case want != nil && !ok:
					t.Errorf("lock %q: free, want %+v", name, *want)
				case want != nil && view(st) != *want:
					t.Errorf("lock %q:\n got %+v\nwant %+v", name, view(st), *want)
				}
			}
			// Finished owners stay refused, on a lock of any name.
			next := uint64(len(tc.steps) + 1)
			for _, owner := range tc.refused {
				if got := lockRes(t, f, next, 100, t0+20*sec, fsm.CommandLockAcquire, fsm.LockOp{Name: "fresh-" + owner, Owner: owner, Node: nodeOf(owner), TTL: ttl}); got.Status != fsm.LockLost {
					t.Errorf("finished owner %s acquired a fresh lock: %+v, want lost", owner, got)
				}
				next++
			}
		})
	}
}

// TestLockTokensIncrease drives one lock through every way it changes hands
// and checks the tokens of successive holders strictly increase.
func TestLockTokensIncrease(t *testing.T) {
	f := fsm.New(nil)
	var index uint64
	next := func() uint64 { index++; return index }
	now := t0
	var tokens []uint64
	holder := func() {
		st, ok := f.Lock("x")
		if !ok || st.Owner == "" {
			t.Fatalf("lock free at index %d, want held", index)
		}
		if len(tokens) == 0 || tokens[len(tokens)-1] != st.Token {
			tokens = append(tokens, st.Token)
		}
	}
	for round := range 20 {
		a, b := fmt.Sprintf("a%d-1", round), fmt.Sprintf("b%d-2", round)
		switch round % 4 {
		case 0: // acquire, release, acquire
			lockRes(t, f, next(), 1, now, fsm.CommandLockAcquire, fsm.LockOp{Name: "x", Owner: a, Node: "n1", TTL: sec})
			holder()
			lockRes(t, f, next(), 1, now, fsm.CommandLockRelease, fsm.LockOp{Name: "x", Owner: a, Node: "n1"})
		case 1: // handoff on release
			lockRes(t, f, next(), 1, now, fsm.CommandLockAcquire, fsm.LockOp{Name: "x", Owner: a, Node: "n1", TTL: sec})
			holder()
			lockRes(t, f, next(), 1, now, fsm.CommandLockAcquire, fsm.LockOp{Name: "x", Owner: b, Node: "n2", TTL: sec, Wait: true})
			lockRes(t, f, next(), 1, now, fsm.CommandLockRelease, fsm.LockOp{Name: "x", Owner: a, Node: "n1"})
			holder()
			lockRes(t, f, next(), 1, now, fsm.CommandLockRelease, fsm.LockOp{Name: "x", Owner: b, Node: "n2"})
		case 2: // handoff on expiry
			lockRes(t, f, next(), 1, now, fsm.CommandLockAcquire, fsm.LockOp{Name: "x", Owner: a, Node: "n1", TTL: sec})
			holder()
			lockRes(t, f, next(), 1, now, fsm.CommandLockAcquire, fsm.LockOp{Name: "x", Owner: b, Node: "n2", TTL: sec, Wait: true})
			now += 2 * sec
			applyTerm(t, f, next(), 1, now, fsm.EncodeLockExpire())
			holder()
			lockRes(t, f, next(), 1, now, fsm.CommandLockRelease, fsm.LockOp{Name: "x", Owner: b, Node: "n2"})
		case 3: // handoff on node release
			lockRes(t, f, next(), 1, now, fsm.CommandLockAcquire, fsm.LockOp{Name: "x", Owner: a, Node: "n1", TTL: sec})
			holder()
			lockRes(t, f, next(), 1, now, fsm.CommandLockAcquire, fsm.LockOp{Name: "x", Owner: b, Node: "n2", TTL: sec, Wait: true})
			applyTerm(t, f, next(), 1, now, fsm.EncodeNodeRelease("n1"))
			holder()
			lockRes(t, f, next(), 1, now, fsm.CommandLockRelease, fsm.LockOp{Name: "x", Owner: b, Node: "n2"})
		}
		now += sec
	}
	if len(tokens) < 35 {
		t.Fatalf("only %d holders observed", len(tokens))
	}
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			t.Fatalf("token %d of holder %d is not above the previous holder's %d: %v", tokens[i], i, tokens[i-1], tokens)
		}
	}
}

func TestLockNotifier(t *testing.T) {
	f := fsm.New(nil)
	var got []fsm.LockChange
	f.SetLockNotifier(func(c fsm.LockChange) { got = append(got, c) })
	ttl := 10 * sec
	type step struct {
		cmd  []byte
		now  int64
		want []fsm.LockChange // nil: no call
	}
	op := func(typ fsm.CommandType, name, owner string, wait bool) []byte {
		return fsm.EncodeLockOp(typ, fsm.LockOp{Name: name, Owner: owner, Node: nodeOf(owner), TTL: ttl, Wait: wait})
	}
	held := func(name, owner string, token uint64, expires int64, ws ...fsm.Waiter) fsm.LockChange {
		return fsm.LockChange{Name: name, State: fsm.LockState{Owner: owner, Node: nodeOf(owner), Token: token, Expires: expires, TTL: ttl, Waiters: ws}}
	}
	steps := []step{
		{op(fsm.CommandLockAcquire, "x", "a1", false), t0, []fsm.LockChange{held("x", "a1", 1, t0+ttl)}},
		{op(fsm.CommandLockAcquire, "x", "b2", false), t0, nil}, // busy
		{op(fsm.CommandLockAcquire, "x", "b2", true), t0, []fsm.LockChange{held("x", "a1", 1, t0+ttl, wt("b2", ttl))}},
		{op(fsm.CommandLockAcquire, "x", "b2", true), t0, nil},        // already queued
		{op(fsm.CommandLockRenew, "x", "a1", false), t0 + sec, nil},   // renewals are not changes
		{op(fsm.CommandLockRelease, "x", "c3", false), t0 + sec, nil}, // stranger
		{op(fsm.CommandLockAcquire, "x", "a1", false), t0 + sec, nil}, // repeat
		{op(fsm.CommandLockRelease, "x", "a1", false), t0 + 2*sec, []fsm.LockChange{held("x", "b2", 8, t0+2*sec+ttl)}},
		{op(fsm.CommandLockRelease, "x", "b2", false), t0 + 3*sec, []fsm.LockChange{{Name: "x"}}}, // freed: zero state
		{op(fsm.CommandLockAcquire, "y", "d1", false), t0 + 3*sec, []fsm.LockChange{held("y", "d1", 10, t0+3*sec+ttl)}},
		{fsm.EncodeLockExpire(), t0 + 3*sec + ttl, []fsm.LockChange{{Name: "y"}}},
		{op(fsm.CommandLockAcquire, "z", "e1", false), t0 + 30*sec, []fsm.LockChange{held("z", "e1", 12, t0+30*sec+ttl)}},
		{fsm.EncodeNodeRelease("n1"), t0 + 30*sec, []fsm.LockChange{{Name: "z"}}},
		{op(fsm.CommandLockAcquire, "", "e1", false), t0 + 30*sec, nil}, // invalid
	}
	for i, s := range steps {
		got = nil
		applyTerm(t, f, uint64(i+1), 1, s.now, s.cmd)
		if len(got) != len(s.want) {
			t.Fatalf("step %d: notifier called %d times (%+v), want %d (%+v)", i+1, len(got), got, len(s.want), s.want)
		}
		for j := range got {
			if got[j].Name != s.want[j].Name || view(got[j].State) != view(s.want[j].State) {
				t.Fatalf("step %d: notified %+v, want %+v", i+1, got[j], s.want[j])
			}
			// The change names its entry, so a node can tell a change made
			// before a lease was granted from one made after.
			if got[j].Index != uint64(i+1) {
				t.Fatalf("step %d: notified with Index %d, want %d", i+1, got[j].Index, i+1)
			}
		}
	}

	// The state handed to the notifier is a copy: changing it does not
	// change the state machine.
	got = nil
	applyTerm(t, f, 100, 1, t0+40*sec, op(fsm.CommandLockAcquire, "w", "f1", false))
	applyTerm(t, f, 101, 1, t0+40*sec, op(fsm.CommandLockAcquire, "w", "g2", true))
	if len(got) != 2 || len(got[1].State.Waiters) != 1 {
		t.Fatalf("notified %+v, want two changes, the second with one waiter", got)
	}
	got[1].State.Waiters[0].Owner = "mallory"
	if st, _ := f.Lock("w"); st.Waiters[0].Owner != "g2" {
		t.Fatalf("notifier's copy aliases the state: waiter is now %q", st.Waiters[0].Owner)
	}
	st, _ := f.Lock("w")
	st.Waiters[0].Owner = "mallory"
	if st2, _ := f.Lock("w"); st2.Waiters[0].Owner != "g2" {
		t.Fatalf("Lock's copy aliases the state: waiter is now %q", st2.Waiters[0].Owner)
	}
}

func TestNextLockExpiry(t *testing.T) {
	f := fsm.New(nil)
	if _, ok := f.NextLockExpiry(); ok {
		t.Fatal("empty state has a lock expiry")
	}
	lockRes(t, f, 1, 1, t0, fsm.CommandLockAcquire, fsm.LockOp{Name: "x", Owner: "a1", Node: "n1", TTL: 5 * sec})
	lockRes(t, f, 2, 1, t0, fsm.CommandLockAcquire, fsm.LockOp{Name: "y", Owner: "b1", Node: "n1", TTL: 9 * sec})
	// Only locks with waiters count: nobody needs x's expiry proposed.
	if at, ok := f.NextLockExpiry(); ok {
		t.Fatalf("NextLockExpiry = %d with no waiters, want none", at)
	}
	lockRes(t, f, 3, 1, t0, fsm.CommandLockAcquire, fsm.LockOp{Name: "y", Owner: "c2", Node: "n2", TTL: sec, Wait: true})
	if at, ok := f.NextLockExpiry(); !ok || at != t0+9*sec {
		t.Fatalf("NextLockExpiry = %d, %v, want %d", at, ok, t0+9*sec)
	}
	lockRes(t, f, 4, 1, t0, fsm.CommandLockAcquire, fsm.LockOp{Name: "x", Owner: "d2", Node: "n2", TTL: sec, Wait: true})
	if at, ok := f.NextLockExpiry(); !ok || at != t0+5*sec {
		t.Fatalf("NextLockExpiry = %d, %v, want %d", at, ok, t0+5*sec)
	}
}

// lockHistory builds a state with held locks, waiters and finished owners.
func lockHistory(t testing.TB) *fsm.FSM {
	f := fsm.New(nil)
	ttl := 30 * sec
	ops := []struct {
		typ  fsm.CommandType
		name string
		own  string
		wait bool
		call uint64
	}{
		{fsm.CommandLockAcquire, "x", "a1", false, 0},
		{fsm.CommandLockAcquire, "x", "b2", true, 0},
		{fsm.CommandLockAcquire, "x", "c3", true, 0},
		{fsm.CommandLockAcquire, "y", "d2", false, 0},
		{fsm.CommandLockRelease, "y", "d2", false, 55}, // d2 finished by its release call 55
		{fsm.CommandLockAcquire, "y", "e3", false, 0},
		{fsm.CommandLockAcquire, "z", "f1", true, 0},
		{fsm.CommandLockAcquire, "z", "g1", true, 0},
		{fsm.CommandLockRelease, "z", "g1", false, 0}, // g1 finished as a withdrawn waiter
		{fsm.CommandLockRelease, "q", "h3", false, 0}, // h3 finished without ever asking
	}
	for i, o := range ops {
		lockRes(t, f, uint64(i+1), 2, t0+int64(i)*sec, o.typ, fsm.LockOp{Name: o.name, Owner: o.own, Node: nodeOf(o.own), TTL: ttl, Wait: o.wait, Call: o.call})
	}
	return f
}

func TestLockSnapshotRestoreRoundTrip(t *testing.T) {
	src := lockHistory(t)
	data := snapshotBytes(t, src)
	dst := fsm.New(nil)
	// Some unrelated state the restore must replace.
	lockRes(t, dst, 1, 1, t0, fsm.CommandLockAcquire, fsm.LockOp{Name: "stale", Owner: "s1", Node: "n1", TTL: sec})
	if err := restore(t, dst, data); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	for _, name := range []string{"x", "y", "z", "q", "stale"} {
		a, aok := src.Lock(name)
		b, bok := dst.Lock(name)
		if aok != bok || view(a) != view(b) {
			t.Errorf("lock %q after restore: %+v (%v), want %+v (%v)", name, view(b), bok, view(a), aok)
		}
	}
	if st, _ := dst.Lock("x"); st.Owner != "a1" || len(st.Waiters) != 2 || st.Waiters[0].Owner != "b2" || st.Waiters[1].Owner != "c3" {
		t.Fatalf("restored x = %+v, want a1 holding with b2, c3 waiting", view(st))
	}
	if !bytes.Equal(snapshotBytes(t, dst), data) {
		t.Fatal("snapshot of the restored state differs from the original")
	}
	if dst.AppliedIndex() != src.AppliedIndex() {
		t.Fatalf("AppliedIndex after restore = %d, want %d", dst.AppliedIndex(), src.AppliedIndex())
	}

	// Both copies now answer every later entry alike; in particular the
	// finished owners stay refused and the queue order is kept.
	later := []struct {
		typ       fsm.CommandType
		name, own string
		call      uint64
		want      fsm.LockStatus
	}{
		{fsm.CommandLockRelease, "y", "d2", 55, fsm.LockReleased}, // retry of d2's release call
		{fsm.CommandLockRelease, "y", "d2", 56, fsm.LockLost},
		{fsm.CommandLockAcquire, "y", "d2", 0, fsm.LockLost},
		{fsm.CommandLockAcquire, "z", "g1", 0, fsm.LockLost},
		{fsm.CommandLockAcquire, "q", "h3", 0, fsm.LockLost},
		{fsm.CommandLockAcquire, "x", "b2", 0, fsm.LockBusy}, // still queued, behind a1
		{fsm.CommandLockRenew, "y", "e3", 0, fsm.LockRenewed},
		{fsm.CommandLockRelease, "x", "a1", 0, fsm.LockReleased},
		{fsm.CommandLockRenew, "x", "b2", 0, fsm.LockRenewed},
		{fsm.CommandLockAcquire, "x", "a1", 0, fsm.LockLost},
	}
	for i, l := range later {
		op := fsm.LockOp{Name: l.name, Owner: l.own, Node: nodeOf(l.own), TTL: sec, Call: l.call}
		idx := uint64(20 + i)
		ra := lockRes(t, src, idx, 2, t0+20*sec, l.typ, op)
		rb := lockRes(t, dst, idx, 2, t0+20*sec, l.typ, op)
		if ra != rb {
			t.Fatalf("%s %s by %s: original answered %+v, restored %+v", l.typ, l.name, l.own, ra, rb)
		}
		if rb.Status != l.want {
			t.Fatalf("%s %s by %s after restore: %s, want %s", l.typ, l.name, l.own, rb.Status, l.want)
		}
	}
	if !bytes.Equal(snapshotBytes(t, src), snapshotBytes(t, dst)) {
		t.Fatal("original and restored state diverged after the same entries")
	}
}

// TestLockTermSurvivesRestore checks the term is part of the snapshot: an
// entry of the same term after a restore must not extend leases.
func TestLockTermSurvivesRestore(t *testing.T) {
	src := fsm.New(nil)
	lockRes(t, src, 1, 5, t0, fsm.CommandLockAcquire, fsm.LockOp{Name: "x", Owner: "a1", Node: "n1", TTL: 10 * sec})
	dst := fsm.New(nil)
	if err := restore(t, dst, snapshotBytes(t, src)); err != nil {
		t.Fatal(err)
	}
	lockRes(t, dst, 2, 5, t0+5*sec, fsm.CommandLockAcquire, fsm.LockOp{Name: "y", Owner: "b1", Node: "n1", TTL: 10 * sec})
	if st, _ := dst.Lock("x"); st.Expires != t0+10*sec {
		t.Fatalf("same-term entry after restore moved x's expiry to %d, want %d", st.Expires, t0+10*sec)
	}
	lockRes(t, dst, 3, 6, t0+6*sec, fsm.CommandLockAcquire, fsm.LockOp{Name: "z", Owner: "c1", Node: "n1", TTL: 10 * sec})
	if st, _ := dst.Lock("x"); st.Expires != t0+16*sec {
		t.Fatalf("new-term entry after restore left x's expiry at %d, want %d", st.Expires, t0+16*sec)
	}
}

// randomLockLog returns n entries of lock traffic: several owners on several
// nodes acquiring, waiting, renewing and releasing a few locks, expiry
// sweeps, node releases, occasional term changes with clock jumps, and
// repeats of earlier entries (retries).
func randomLockLog(t testing.TB, seed uint64, n int) []*raft.Log {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	names := []string{"l0", "l1", "l2"}
	nodes := []string{"n1", "n2", "n3"}
	var owners []string
	calls := map[string]fsm.LockOp{} // last release call per owner
	now, term := t0, uint64(1)
	logs := make([]*raft.Log, 0, n)
	for i := range n {
		now += rng.Int64N(400) * int64(time.Millisecond)
		if rng.IntN(40) == 0 {
			term++
			now += rng.Int64N(4*sec) - sec // the new leader's clock differs
		}
		var data []byte
		switch p := rng.IntN(100); {
		case p < 35 || len(owners) == 0:
			owner := fmt.Sprintf("o%d", i)
			if rng.IntN(4) == 0 && len(owners) > 0 {
				owner = owners[rng.IntN(len(owners))] // retry of an older one
			} else {
				owners = append(owners, owner)
			}
			data = fsm.EncodeLockOp(fsm.CommandLockAcquire, fsm.LockOp{
				Name: names[rng.IntN(len(names))], Owner: owner, Node: nodes[rng.IntN(len(nodes))],
				TTL: (1 + rng.Int64N(3)) * sec, Wait: rng.IntN(2) == 0,
			})
		case p < 55:
			data = fsm.EncodeLockOp(fsm.CommandLockRenew, fsm.LockOp{Name: names[rng.IntN(len(names))], Owner: recent(rng, owners)})
		case p < 85:
			// Release calls carry an ID; some are retries of an earlier call.
			op := fsm.LockOp{Name: names[rng.IntN(len(names))], Owner: recent(rng, owners), Call: uint64(i)}
			if prev, ok := calls[op.Owner]; ok && rng.IntN(2) == 0 {
				op.Name, op.Call = prev.Name, prev.Call
			} else if rng.IntN(8) == 0 {
				op.Call = 0
			}
			calls[op.Owner] = op
			data = fsm.EncodeLockOp(fsm.CommandLockRelease, op)
		case p < 95:
			data = fsm.EncodeLockExpire()
		case p < 98:
			data = fsm.EncodeNodeRelease(nodes[rng.IntN(len(nodes))])
		default:
			logs = append(logs, &raft.Log{Index: uint64(i + 1), Term: term, Type: raft.LogNoop})
			continue
		}
		if err := fsm.Stamp(data, time.Unix(0, now)); err != nil {
			t.Fatal(err)
		}
		logs = append(logs, &raft.Log{Index: uint64(i + 1), Term: term, Type: raft.LogCommand, Data: data})
	}
	return logs
}

// recent picks one of the last few owners, which are the likely holders.
func recent(rng *rand.Rand, owners []string) string {
	r := owners[max(0, len(owners)-6):]
	return r[rng.IntN(len(r))]
}

func TestLockSameLogSameState(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			logs := randomLockLog(t, seed, 600)
			a, b := fsm.New(nil), fsm.New(nil)
			var changesA, changesB []fsm.LockChange
			a.SetLockNotifier(func(c fsm.LockChange) { changesA = append(changesA, c) })
			b.SetLockNotifier(func(c fsm.LockChange) { changesB = append(changesB, c) })
			counts := map[fsm.LockStatus]int{}
			for _, l := range logs {
				ra, rb := a.Apply(l), b.Apply(l)
				if !reflect.DeepEqual(ra, rb) {
					t.Fatalf("entry %d: results differ: %+v vs %+v", l.Index, ra, rb)
				}
				if r, ok := ra.(*fsm.LockResult); ok {
					counts[r.Status]++
				}
			}
			// Guard against a generator that misses the interesting paths.
			for _, s := range []fsm.LockStatus{fsm.LockAcquired, fsm.LockQueued, fsm.LockBusy, fsm.LockRenewed, fsm.LockReleased, fsm.LockLost} {
				if counts[s] < 5 {
					t.Fatalf("only %d %s results in the log (%v); generator does not exercise the rules", counts[s], s, counts)
				}
			}
			if len(changesA) != len(changesB) {
				t.Fatalf("notifier called %d vs %d times", len(changesA), len(changesB))
			}
			for i := range changesA {
				if changesA[i].Name != changesB[i].Name || view(changesA[i].State) != view(changesB[i].State) {
					t.Fatalf("change %d differs: %+v vs %+v", i, changesA[i], changesB[i])
				}
			}
			sa := snapshotBytes(t, a)
			if !bytes.Equal(sa, snapshotBytes(t, b)) {
				t.Fatal("two FSMs applying the same lock log produced different snapshots")
			}
			// Snapshots are taken repeatedly without changing.
			if !bytes.Equal(sa, snapshotBytes(t, a)) {
				t.Fatal("two snapshots of one state differ")
			}

			// Restart from a snapshot taken at several points and replay the
			// tail: the result is byte-identical, results included.
			for _, cut := range []int{1, len(logs) / 3, len(logs) / 2, len(logs) - 1} {
				c := fsm.New(nil)
				for _, l := range logs[:cut] {
					c.Apply(l)
				}
				d := fsm.New(nil)
				if err := restore(t, d, snapshotBytes(t, c)); err != nil {
					t.Fatalf("Restore: %v", err)
				}
				for _, l := range logs[cut:] {
					rc, rd := c.Apply(l), d.Apply(l)
					if !reflect.DeepEqual(rc, rd) {
						t.Fatalf("cut %d, entry %d: restored copy answered %+v, original %+v", cut, l.Index, rd, rc)
					}
				}
				if !bytes.Equal(snapshotBytes(t, d), sa) {
					t.Fatalf("snapshot at %d + tail reached a different state than the full log", cut)
				}
			}
		})
	}
}

// TestLockWaitersSliceNotShared checks that the waiters returned by Lock
// are not disturbed by later entries that filter the queue in place.
func TestLockWaitersSliceNotShared(t *testing.T) {
	f := fsm.New(nil)
	lockRes(t, f, 1, 1, t0, fsm.CommandLockAcquire, fsm.LockOp{Name: "x", Owner: "a2", Node: "n2", TTL: sec})
	lockRes(t, f, 2, 1, t0, fsm.CommandLockAcquire, fsm.LockOp{Name: "x", Owner: "b1", Node: "n1", TTL: sec, Wait: true})
	lockRes(t, f, 3, 1, t0, fsm.CommandLockAcquire, fsm.LockOp{Name: "x", Owner: "c3", Node: "n3", TTL: sec, Wait: true})
	before, _ := f.Lock("x")
	want := slices.Clone(before.Waiters)
	applyTerm(t, f, 4, 1, t0, fsm.EncodeNodeRelease("n1"))
	if !slices.Equal(before.Waiters, want) {
		t.Fatalf("a copy returned by Lock changed under a node release: %+v, was %+v", before.Waiters, want)
	}
	if st, _ := f.Lock("x"); len(st.Waiters) != 1 || st.Waiters[0].Owner != "c3" {
		t.Fatalf("waiters after node release: %+v, want only c3", st.Waiters)
	}
}

// TestLockOpWithoutCallIsApplied checks that a lock entry written before
// LockOp had its Call field (it ends after Wait) is still applied, as a
// release without a call ID.
func TestLockOpWithoutCallIsApplied(t *testing.T) {
	f := fsm.New(nil)
	old := func(typ fsm.CommandType, op fsm.LockOp) []byte {
		b := fsm.EncodeLockOp(typ, op) // Call 0 encodes as one trailing 0 byte
		if b[len(b)-1] != 0 {
			t.Fatalf("encoding of Call 0 does not end in a 0 byte: %x", b)
		}
		return b[:len(b)-1]
	}
	if out := applyTerm(t, f, 1, 1, t0, old(fsm.CommandLockAcquire, fsm.LockOp{Name: "x", Owner: "a1", Node: "n1", TTL: sec, Wait: true})); !reflect.DeepEqual(out, &fsm.LockResult{Status: fsm.LockAcquired, Token: 1, Expires: t0 + sec}) {
		t.Fatalf("old-format acquire: %+v", out)
	}
	if out := applyTerm(t, f, 2, 1, t0, old(fsm.CommandLockRelease, fsm.LockOp{Name: "x", Owner: "a1", Node: "n1"})); !reflect.DeepEqual(out, &fsm.LockResult{Status: fsm.LockReleased}) {
		t.Fatalf("old-format release: %+v", out)
	}
	if out := applyTerm(t, f, 3, 1, t0, old(fsm.CommandLockRelease, fsm.LockOp{Name: "x", Owner: "a1", Node: "n1"})); !reflect.DeepEqual(out, &fsm.LockResult{Status: fsm.LockLost}) {
		t.Fatalf("repeated old-format release: %+v", out)
	}
}
