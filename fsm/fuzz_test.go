package fsm_test

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/fsm"
)

// FuzzApply feeds arbitrary bytes to Apply on a populated FSM. Whatever the
// input, Apply must not panic, must return one of its documented results,
// must leave the state alone when it returns an error, must be deterministic,
// and must leave a state that survives a snapshot round trip.
func FuzzApply(f *testing.F) {
	stamped := func(cmd []byte) []byte {
		if err := fsm.Stamp(cmd, timeAt(at(12))); err != nil {
			f.Fatalf("Stamp: %v", err)
		}
		return cmd
	}
	f.Add(stamped(fsm.EncodeClaims(fsm.ClaimBatch{Node: "n1", Claims: []fsm.Claim{claim("alpha", 12), claim("new", 12), claim("new", 13)}})))
	f.Add(stamped(fsm.EncodeClaims(fsm.ClaimBatch{Node: "n2", Claims: []fsm.Claim{claim("alpha", 11)}})))
	f.Add(stamped(fsm.EncodeClaims(fsm.ClaimBatch{Node: "", Claims: []fsm.Claim{claim("", 1)}})))
	f.Add(stamped(fsm.EncodeClaims(fsm.ClaimBatch{Node: "n1"})))
	// Instants of delta before its latest grant (fuzzState), one never
	// granted and one granted, claimed in any order and plain.
	late := fsm.Claim{Job: "delta", Tick: 12, At: at(12), Deadline: at(12) + sec, Exclusive: true, LeaseTTL: sec}
	f.Add(stamped(fsm.EncodeClaims(fsm.ClaimBatch{Node: "n3", AnyOrder: true, Claims: []fsm.Claim{late, claim("delta", 11), claim("alpha", 12)}})))
	f.Add(stamped(fsm.EncodeClaims(fsm.ClaimBatch{Node: "n2", Claims: []fsm.Claim{late}})))
	f.Add(stamped(fsm.EncodeRegistration(fsm.Registration{Node: "n1", Reset: true, Add: []string{"x", "alpha"}, Remove: []string{"gamma"}})))
	f.Add(stamped(fsm.EncodeRegistration(fsm.Registration{})))
	for _, c := range malformedEntries() {
		f.Add(c.data)
	}
	f.Add([]byte("\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"))

	f.Fuzz(func(t *testing.T, data []byte) {
		const index = 100
		fm := fuzzState(t)
		// An entry whose header decodes carries the leader's time, and the
		// state machine's clock advances to it whatever the body holds, so
		// jobs that aged out by then are forgotten (jobgc.go). What a
		// rejected entry must leave unchanged is the state of a twin that
		// applied an empty registration at the same time.
		twin := fuzzState(t)
		if h, err := fsm.PeekHeader(data); err == nil {
			tick := fsm.EncodeRegistration(fsm.Registration{})
			if err := fsm.Stamp(tick, time.Unix(0, h.Now)); err != nil {
				t.Fatalf("Stamp: %v", err)
			}
			twin.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: tick})
		}
		wantJobs := twin.Jobs()
		out := fm.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data})

		switch res := out.(type) {
		case nil:
			h, err := fsm.PeekHeader(data)
			// The commands whose result is nothing: registrations, lock
			// expiry, node release and pause/resume.
			if err != nil || !slices.Contains([]fsm.CommandType{fsm.CommandRegister, fsm.CommandLockExpire, fsm.CommandNodeRelease, fsm.CommandPause}, h.Type) {
				t.Fatalf("Apply returned nil for a command that answers (header %+v, %v)", h, err)
			}
		case *fsm.ClaimResult:
			if res.Index != index {
				t.Fatalf("ClaimResult.Index = %d, want %d", res.Index, index)
			}
			for i, o := range res.Outcomes {
				switch {
				case o.Reason == fsm.ReasonGranted && o.Token != index:
					t.Fatalf("outcome %d granted with token %d, want %d", i, o.Token, index)
				case o.Reason == fsm.ReasonRepeat && (o.Token == 0 || o.Token > index):
					t.Fatalf("outcome %d repeat with token %d, want an earlier entry's or this one's", i, o.Token)
				case o.Reason == fsm.ReasonRepeat && o.Token == index && !slices.ContainsFunc(res.Outcomes[:i], func(p fsm.Outcome) bool { return p.Reason == fsm.ReasonGranted }):
					// Two copies of one claim in one entry both learn its
					// grant, so this entry's token is right only after a
					// grant in it.
					t.Fatalf("outcome %d repeat with this entry's token %d, but nothing before it was granted", i, o.Token)
				case !o.Granted() && o.Token != 0:
					t.Fatalf("outcome %d refused (%s) with token %d", i, o.Reason, o.Token)
				case strings.HasPrefix(o.Reason.String(), "reason("):
					// Reason.String names every defined reason; only an
					// undefined one prints as its number.
					t.Fatalf("outcome %d has undefined reason %s", i, o.Reason)
				}
			}
		case error:
			if errors.Is(res, fsm.ErrHalted) {
				// An entry of a newer build: the state machine stops there
				// (a batch may have applied its earlier commands) and must
				// refuse to snapshot the state it stopped in.
				if fm.Halted() == nil {
					t.Fatalf("Apply returned %v but Halted() is nil", res)
				}
				if _, err := fm.Snapshot(); !errors.Is(err, fsm.ErrHalted) {
					t.Fatalf("Snapshot of a halted state machine: %v, want ErrHalted", err)
				}
				return
			}
			if !errors.Is(res, fsm.ErrMalformed) && !errors.Is(res, fsm.ErrUnsupportedVersion) && !errors.Is(res, fsm.ErrUnknownCommand) {
				t.Fatalf("Apply error %v wraps none of the fsm sentinels", res)
			}
			if got := fm.Jobs(); !maps.Equal(got, wantJobs) {
				t.Fatalf("rejected entry changed Jobs to %+v", got)
			}
		case *fsm.LockResult, *fsm.RunUpdateResult, *fsm.RunNowResult, *fsm.BatchResult:
			// Answers of the lock, run-lease, run-now and batch commands;
			// their rules have their own tests. What holds for every entry
			// is checked below: replicas agree and snapshots round-trip.
		default:
			t.Fatalf("Apply returned %T", out)
		}

		other := fuzzState(t)
		other.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data})
		snap := snapshotBytes(t, fm)
		if !bytes.Equal(snap, snapshotBytes(t, other)) {
			t.Fatalf("two FSMs applying the same entry diverged")
		}
		restored := fsm.New(nil)
		if err := restore(t, restored, snap); err != nil {
			t.Fatalf("Restore of a snapshot taken after the entry: %v", err)
		}
		if !bytes.Equal(snapshotBytes(t, restored), snap) {
			t.Fatalf("snapshot round trip changed the state")
		}
	})
}

// fuzzState is populated with one grant made by an any-order claim, so
// that the job delta keeps a record of its grants and a claim may be
// granted out of order.
func fuzzState(t *testing.T) *fsm.FSM {
	t.Helper()
	f := populated(t)
	applyAnyOrder(t, f, 8, at(13), "n1", claim("delta", 13))
	return f
}
