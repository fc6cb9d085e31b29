package fsm_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/interlockraft/interlock/fsm"
)

// own names owner seq of incarnation inc on node, as the cluster does.
func own(node, inc string, seq int) string { return fmt.Sprintf("%s/%s/%d", node, inc, seq) }

// ownerSeq applies lock ops in order at increasing indexes and times.
type ownerSeq struct {
	t     *testing.T
	f     *fsm.FSM
	index uint64
	now   int64
}

func newOwnerSeq(t *testing.T) *ownerSeq { return &ownerSeq{t: t, f: fsm.New(nil), now: t0} }

func (s *ownerSeq) do(typ fsm.CommandType, op fsm.LockOp, want fsm.LockStatus) fsm.LockResult {
	s.t.Helper()
	s.index++
	s.now += int64(1e6)
	if op.Node == "" {
		op.Node = "n1"
	}
	if typ == fsm.CommandLockAcquire && op.TTL == 0 {
		op.TTL = sec
	}
	r := lockRes(s.t, s.f, s.index, 1, s.now, typ, op)
	if r.Status != want {
		s.t.Fatalf("entry %d: %s %s by %s (call %d): %s, want %s", s.index, typ, op.Name, op.Owner, op.Call, r.Status, want)
	}
	return r
}

// TestLockOwnerSequenceRules checks the rules for node/incarnation/sequence
// owners: a duplicate of a finished request is refused without a record per
// owner, a request reordered within the window is still served, and a
// retried release is answered as the first attempt was.
func TestLockOwnerSequenceRules(t *testing.T) {
	s := newOwnerSeq(t)
	acq := fsm.CommandLockAcquire
	rel := fsm.CommandLockRelease
	a1, a2, a3 := own("n1", "aa", 1), own("n1", "aa", 2), own("n1", "aa", 3)

	s.do(acq, fsm.LockOp{Name: "x", Owner: a1}, fsm.LockAcquired)
	s.do(acq, fsm.LockOp{Name: "x", Owner: a1}, fsm.LockAcquired) // duplicate while held
	s.do(rel, fsm.LockOp{Name: "x", Owner: a1, Call: 7}, fsm.LockReleased)
	s.do(rel, fsm.LockOp{Name: "x", Owner: a1, Call: 7}, fsm.LockReleased) // retry of the call
	s.do(rel, fsm.LockOp{Name: "x", Owner: a1, Call: 8}, fsm.LockLost)     // another call
	s.do(acq, fsm.LockOp{Name: "x", Owner: a1}, fsm.LockLost)              // late duplicate

	// Sequence 3 lands before 2: both are new requests and are served.
	s.do(acq, fsm.LockOp{Name: "y", Owner: a3}, fsm.LockAcquired)
	s.do(acq, fsm.LockOp{Name: "y", Owner: a2, Wait: true}, fsm.LockQueued)
	s.do(acq, fsm.LockOp{Name: "y", Owner: a2, Wait: true}, fsm.LockQueued) // duplicate while queued
	if st, _ := s.f.Lock("y"); len(st.Waiters) != 1 {
		t.Fatalf("duplicate queued twice: %+v", st.Waiters)
	}
	s.do(rel, fsm.LockOp{Name: "y", Owner: a2}, fsm.LockReleased) // withdrawn
	s.do(acq, fsm.LockOp{Name: "y", Owner: a2, Wait: true}, fsm.LockLost)

	// A withdrawal applied before its acquire: the acquire is refused.
	a9 := own("n1", "aa", 9)
	s.do(rel, fsm.LockOp{Name: "z", Owner: a9}, fsm.LockLost)
	s.do(acq, fsm.LockOp{Name: "z", Owner: a9}, fsm.LockLost)

	// An unseen sequence that fell below the window is refused; the
	// caller retries with a fresh one.
	far := own("n1", "aa", 9+1024)
	s.do(acq, fsm.LockOp{Name: "w", Owner: far}, fsm.LockAcquired)
	s.do(acq, fsm.LockOp{Name: "v", Owner: own("n1", "aa", 5)}, fsm.LockLost)
	s.do(acq, fsm.LockOp{Name: "v", Owner: own("n1", "aa", 10)}, fsm.LockAcquired)

	// Other incarnations and nodes have their own sequences.
	s.do(acq, fsm.LockOp{Name: "u", Owner: own("n1", "bb", 1)}, fsm.LockAcquired)
	s.do(acq, fsm.LockOp{Name: "t", Owner: own("n2", "aa", 1), Node: "n2"}, fsm.LockAcquired)

	// A lease that expired is settled too.
	b1, b2 := own("n2", "cc", 1), own("n2", "cc", 2)
	s.do(acq, fsm.LockOp{Name: "e", Owner: b1, Node: "n2", TTL: 5e6}, fsm.LockAcquired)
	s.do(acq, fsm.LockOp{Name: "e", Owner: b2, Node: "n2", Wait: true}, fsm.LockQueued)
	s.now += 10e6
	s.index++
	applyTerm(t, s.f, s.index, 1, s.now, fsm.EncodeLockExpire())
	if st, _ := s.f.Lock("e"); st.Owner != b2 {
		t.Fatalf("after expiry the lock is %+v, want it handed to %s", view(st), b2)
	}
	s.do(acq, fsm.LockOp{Name: "e", Owner: b1, Node: "n2", Wait: true}, fsm.LockLost)
}

func TestLockOwnerStatus(t *testing.T) {
	s := newOwnerSeq(t)
	a1, a2, a3, a4 := own("n1", "aa", 1), own("n1", "aa", 2), own("n1", "aa", 3), own("n1", "aa", 4)
	check := func(owner string, want fsm.OwnerStatus, wantToken uint64) {
		t.Helper()
		if got, tok := s.f.LockOwner("x", owner); got != want || tok != wantToken {
			t.Fatalf("LockOwner(x, %s) = %s, %d; want %s, %d", owner, got, tok, want, wantToken)
		}
	}
	check(a1, fsm.OwnerPending, 0)
	r := s.do(fsm.CommandLockAcquire, fsm.LockOp{Name: "x", Owner: a1}, fsm.LockAcquired)
	s.do(fsm.CommandLockAcquire, fsm.LockOp{Name: "x", Owner: a3, Wait: true}, fsm.LockQueued)
	check(a1, fsm.OwnerHolds, r.Token)
	check(a3, fsm.OwnerQueued, 0)
	check(a2, fsm.OwnerPending, 0) // reordered behind 3, not applied yet
	check(a4, fsm.OwnerPending, 0)
	s.do(fsm.CommandLockRelease, fsm.LockOp{Name: "x", Owner: a1}, fsm.LockReleased)
	check(a1, fsm.OwnerSettled, 0)
	s.do(fsm.CommandLockRelease, fsm.LockOp{Name: "x", Owner: a3}, fsm.LockReleased)
	check(a3, fsm.OwnerSettled, 0)
	check("legacy-owner", fsm.OwnerPending, 0)
	for _, st := range []fsm.OwnerStatus{fsm.OwnerPending, fsm.OwnerHolds, fsm.OwnerQueued, fsm.OwnerSettled, 0} {
		if st.String() == "" {
			t.Fatalf("OwnerStatus(%d) has no name", st)
		}
	}
}

// TestLockOwnerMemoryBounded churns 100,000 lock owners through the state
// machine, first from a few long-lived nodes and then from incarnations
// that come and go, and checks that the lock state's memory and its
// snapshot stay bounded whatever the lock rate. Two replicas apply the same
// entries and must agree byte for byte, so pruning is deterministic.
func TestLockOwnerMemoryBounded(t *testing.T) {
	const owners = 100_000
	cases := []struct {
		name string
		// incarnation returns the incarnation of owner i and the owner's
		// sequence in it.
		incarnation func(i int) (string, int)
		maxIncs     int
		maxSnapshot int
	}{
		{"three nodes", func(i int) (string, int) { return fmt.Sprintf("n%d/inc", i%3), i/3 + 1 }, 3, 16 << 10},
		{"incarnation churn", func(i int) (string, int) { return fmt.Sprintf("n%d/inc%d", i%3, i/50), i%50 + 1 }, 1024, 512 << 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := fsm.New(nil), fsm.New(nil)
			index := uint64(0)
			now := t0
			step := func(typ fsm.CommandType, op fsm.LockOp) fsm.LockStatus {
				index++
				ra := lockRes(t, a, index, 1, now, typ, op)
				rb := lockRes(t, b, index, 1, now, typ, op)
				if ra != rb {
					t.Fatalf("replicas answered entry %d differently: %+v and %+v", index, ra, rb)
				}
				return ra.Status
			}
			var held []string
			for i := range owners {
				now += int64(1e6) // a thousand owners per second of leader time
				inc, seq := tc.incarnation(i)
				owner := fmt.Sprintf("%s/%d", inc, seq)
				name := fmt.Sprintf("lock%d", i%16)
				if st := step(fsm.CommandLockAcquire, fsm.LockOp{Name: name, Owner: owner, Node: "n", TTL: sec, Wait: true}); st != fsm.LockAcquired && st != fsm.LockQueued {
					t.Fatalf("owner %d: acquire %s", i, st)
				}
				held = append(held, owner)
				if len(held) == 32 { // release the oldest, with a call ID
					o := held[0]
					held = held[1:]
					oname := fmt.Sprintf("lock%d", (i-31)%16)
					step(fsm.CommandLockRelease, fsm.LockOp{Name: oname, Owner: o, Node: "n", Call: uint64(i + 1)})
				}
			}
			incs, releases, legacy := a.LockMemory()
			if incs > tc.maxIncs || releases > incs*128 || legacy != 0 {
				t.Fatalf("after %d owners the lock memory holds %d incarnations, %d release calls, %d older-form owners; want at most %d, %d, 0",
					owners, incs, releases, legacy, tc.maxIncs, incs*128)
			}
			sa, sb := snapshotBytes(t, a), snapshotBytes(t, b)
			if !bytes.Equal(sa, sb) {
				t.Fatal("replicas that applied the same entries have different snapshots")
			}
			if len(sa) > tc.maxSnapshot {
				t.Fatalf("snapshot after %d owners is %d bytes, want at most %d", owners, len(sa), tc.maxSnapshot)
			}
			t.Logf("after %d owners: %d incarnations, %d release calls, snapshot %d bytes", owners, incs, releases, len(sa))

			// Ten minutes later a new incarnation's first request drops
			// every record unseen since.
			now += int64(11 * 60 * 1e9)
			step(fsm.CommandLockAcquire, fsm.LockOp{Name: "late", Owner: "n9/new/1", Node: "n9", TTL: sec})
			if incs, _, _ := a.LockMemory(); incs != 1 {
				t.Fatalf("%d incarnation records kept after ten idle minutes, want 1", incs)
			}
		})
	}
}

// TestLockOwnerRecordsSurviveRestore checks that the incarnation records are
// part of the snapshot: a restored replica refuses the same late duplicate
// and answers the same retried release.
func TestLockOwnerRecordsSurviveRestore(t *testing.T) {
	s := newOwnerSeq(t)
	a1, a2 := own("n1", "aa", 1), own("n1", "aa", 2)
	s.do(fsm.CommandLockAcquire, fsm.LockOp{Name: "x", Owner: a1}, fsm.LockAcquired)
	s.do(fsm.CommandLockRelease, fsm.LockOp{Name: "x", Owner: a1, Call: 5}, fsm.LockReleased)
	s.do(fsm.CommandLockAcquire, fsm.LockOp{Name: "x", Owner: a2, Wait: true}, fsm.LockAcquired)
	data := snapshotBytes(t, s.f)
	dst := fsm.New(nil)
	if err := restore(t, dst, data); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !bytes.Equal(snapshotBytes(t, dst), data) {
		t.Fatal("snapshot of the restored state differs")
	}
	s.f = dst
	s.do(fsm.CommandLockRelease, fsm.LockOp{Name: "x", Owner: a1, Call: 5}, fsm.LockReleased)
	s.do(fsm.CommandLockAcquire, fsm.LockOp{Name: "x", Owner: a1}, fsm.LockLost)
	if st, _ := dst.LockOwner("x", a1); st != fsm.OwnerSettled {
		t.Fatalf("restored LockOwner(a1) = %s, want settled", st)
	}
}

// TestRestoreNotifierSeesRestoredState checks that the restore notifier
// runs after Restore without the state machine's lock held, so it can read
// the restored state.
func TestRestoreNotifierSeesRestoredState(t *testing.T) {
	s := newOwnerSeq(t)
	a1 := own("n1", "aa", 1)
	s.do(fsm.CommandLockAcquire, fsm.LockOp{Name: "x", Owner: a1}, fsm.LockAcquired)
	data := snapshotBytes(t, s.f)
	dst := fsm.New(nil)
	var got fsm.OwnerStatus
	dst.SetRestoreNotifier(func() { got, _ = dst.LockOwner("x", a1) })
	if err := restore(t, dst, data); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got != fsm.OwnerHolds {
		t.Fatalf("restore notifier saw %s, want holds", got)
	}
}
