package fsm

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// FuzzDecodeCommand decodes arbitrary bytes as every command body and every
// result the codec knows. Whatever the input, no decoder may panic, and a
// decoder that fails must say so with ErrMalformed (or ErrUnsupportedVersion
// for a header), because a corrupt log entry or RPC answer must become an
// error, never a crash. Seeds: every encoder's output plus
// testdata/fuzz/FuzzDecodeCommand.
func FuzzDecodeCommand(f *testing.F) {
	f.Add(EncodeClaims(ClaimBatch{Node: "n1", Claims: []Claim{{Job: "alpha", Tick: 12, At: 12e9}}}))
	f.Add(EncodeRegistration(Registration{Node: "n1", Reset: true, Add: []string{"x"}, Remove: []string{"y"}}))
	f.Add(EncodeRunUpdate(RunUpdate{Node: "n1"}))
	f.Add(EncodeLockOp(CommandLockAcquire, LockOp{Name: "l", Owner: "o", TTL: 1e9}))
	f.Add(EncodeLockExpire())
	f.Add(EncodeNodeReleaseKeeping("n1", []string{"alpha"}))
	f.Add(EncodeBatch([][]byte{EncodeLockExpire(), EncodeNodeRelease("n2")}))
	f.Add(EncodeClaimResult(&ClaimResult{Index: 3, Outcomes: []Outcome{{Reason: ReasonGranted, Token: 3}}}))
	f.Add(EncodeLockResult(&LockResult{}))
	f.Add(EncodeRunUpdateResult(&RunUpdateResult{}))

	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(what string, err error) {
			t.Helper()
			if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("%s: error %v wraps neither ErrMalformed nor ErrUnsupportedVersion", what, err)
			}
		}
		_, err := PeekHeader(data)
		check("PeekHeader", err)

		bodies := []struct {
			what   string
			decode func(d *decoder) error
		}{
			{"claims", func(d *decoder) error { _, err := decodeClaims(d); return err }},
			{"registration", func(d *decoder) error { _, err := decodeRegistration(d); return err }},
			{"run update", func(d *decoder) error { _, err := decodeRunUpdate(d); return err }},
			{"lock op", func(d *decoder) error { _, err := decodeLockOp(d); return err }},
			{"node release", func(d *decoder) error { _, _, err := decodeNodeRelease(d); return err }},
			{"batch", func(d *decoder) error { _, err := decodeBatch(d); return err }},
		}
		for _, b := range bodies {
			// Both as a bare body and after a header, as Apply sees it.
			check(b.what, b.decode(&decoder{buf: data}))
			if len(data) >= headerLen {
				check(b.what+" after a header", b.decode(&decoder{buf: data[headerLen:]}))
			}
		}
		checkClaimViews(t, data)
		if len(data) >= headerLen {
			checkClaimViews(t, data[headerLen:])
		}
		_, err = DecodeClaimResult(data)
		check("DecodeClaimResult", err)
		_, err = DecodeLockResult(data)
		check("DecodeLockResult", err)
		_, err = DecodeRunUpdateResult(data)
		check("DecodeRunUpdateResult", err)
	})
}

// checkClaimViews checks that decodeClaimViews, which Apply uses, reads
// exactly what decodeClaims reads, and fails exactly when it fails, so that
// a claim entry means the same to this build as to one that copies.
func checkClaimViews(t *testing.T, data []byte) {
	t.Helper()
	want, werr := decodeClaims(&decoder{buf: data})
	node, views, err := decodeClaimViews(&decoder{buf: data}, nil)
	if (err == nil) != (werr == nil) {
		t.Fatalf("decodeClaimViews error %v, decodeClaims error %v", err, werr)
	}
	if err != nil {
		return
	}
	if node != want.Node || len(views) != len(want.Claims) {
		t.Fatalf("decodeClaimViews: node %q and %d claims, want %q and %d", node, len(views), want.Node, len(want.Claims))
	}
	for i, v := range views {
		c := want.Claims[i]
		got := Claim{Job: string(v.job), Tick: v.tick, At: v.at, Deadline: v.deadline, Exclusive: v.exclusive, LeaseTTL: v.leaseTTL}
		if got != c {
			t.Fatalf("claim %d: decodeClaimViews read %+v, decodeClaims %+v", i, got, c)
		}
	}
}

// FuzzRestore restores arbitrary bytes as a snapshot. Restore must return
// an error or succeed, never panic; a restore that succeeds must leave a
// state whose own snapshot restores to the same bytes. Seeds: a real
// snapshot plus testdata/fuzz/FuzzRestore.
func FuzzRestore(f *testing.F) {
	src := New(nil)
	src.Apply(rlog(1, stampedAt(EncodeRegistration(Registration{Node: "n1", Add: []string{"alpha"}}), 1e9)))
	src.Apply(rlog(2, stampedAt(EncodeClaims(ClaimBatch{Node: "n1", Claims: []Claim{{Job: "alpha", Tick: 1, At: 1e9}}}), 1e9)))
	src.Apply(rlog(3, stampedAt(EncodeLockOp(CommandLockAcquire, LockOp{Name: "l", Owner: "o", TTL: 1e9}), 1e9)))
	f.Add(persisted(f, src))
	// Grant records and a late grant: format 4.
	src.Apply(rlog(4, stampedAt(EncodeClaims(ClaimBatch{Node: "n1", AnyOrder: true, Claims: []Claim{{Job: "alpha", Tick: 3, At: 3e9, Deadline: 9e9}}}), 3e9)))
	src.Apply(rlog(5, stampedAt(EncodeClaims(ClaimBatch{Node: "n2", AnyOrder: true, Claims: []Claim{{Job: "alpha", Tick: 2, At: 2e9, Deadline: 9e9, Exclusive: true, LeaseTTL: 1e9}}}), 3e9)))
	if st := src.jobs["alpha"]; st.record.late.token != 5 {
		f.Fatalf("seed state has no late grant: %+v", st)
	}
	f.Add(persisted(f, src))
	f.Add(persisted(f, New(nil)))

	f.Fuzz(func(t *testing.T, data []byte) {
		fm := New(nil)
		if err := fm.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
			return
		}
		snap := persisted(t, fm)
		again := New(nil)
		if err := again.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
			t.Fatalf("a restored state's own snapshot does not restore: %v", err)
		}
		if !bytes.Equal(persisted(t, again), snap) {
			t.Fatalf("snapshot round trip of a restored state changed it")
		}
	})
}

// rlog wraps a command as the Raft log entry Apply receives.
func rlog(index uint64, data []byte) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

// stampedAt stamps cmd with the leader time at Unix nanoseconds, as the
// leader does before proposing it.
func stampedAt(cmd []byte, at int64) []byte {
	_ = Stamp(cmd, time.Unix(0, at))
	return cmd
}

// persisted takes a snapshot of fm and returns its bytes.
func persisted(t testing.TB, fm *FSM) []byte {
	t.Helper()
	snap, err := fm.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	var sink bufSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	return sink.Bytes()
}

// bufSink is a raft.SnapshotSink into memory.
type bufSink struct{ bytes.Buffer }

func (*bufSink) ID() string    { return "fuzz" }
func (*bufSink) Cancel() error { return nil }
func (*bufSink) Close() error  { return nil }
