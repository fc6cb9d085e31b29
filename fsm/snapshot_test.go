package fsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"testing"
	"testing/iotest"

	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/fsm"
)

// memSink is an in-memory raft.SnapshotSink. If failWrite is set, Write
// returns it.
type memSink struct {
	bytes.Buffer
	failWrite error
	closed    int
	cancelled int
}

var _ raft.SnapshotSink = (*memSink)(nil)

func (s *memSink) Write(p []byte) (int, error) {
	if s.failWrite != nil {
		return 0, s.failWrite
	}
	return s.Buffer.Write(p)
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed++; return nil }
func (s *memSink) Cancel() error { s.cancelled++; return nil }

// snapshotBytes takes a snapshot of f and persists it into a memSink.
func snapshotBytes(t testing.TB, f *fsm.FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if sink.closed != 1 || sink.cancelled != 0 {
		t.Fatalf("Persist closed the sink %d times and cancelled it %d times, want 1 and 0", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

// closeTracker records whether Restore closed its reader.
type closeTracker struct {
	io.Reader
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

func restore(t testing.TB, f *fsm.FSM, data []byte) error {
	t.Helper()
	rc := &closeTracker{Reader: bytes.NewReader(data)}
	err := f.Restore(rc)
	if !rc.closed {
		t.Errorf("Restore did not close its reader")
	}
	return err
}

// populated returns an FSM with grants of several jobs and registrations of
// several nodes, applied at indexes 1 to 7.
func populated(t testing.TB) *fsm.FSM {
	t.Helper()
	f := fsm.New(nil)
	register(t, f, 1, fsm.Registration{Node: "n2", Add: []string{"alpha", "beta"}})
	register(t, f, 2, fsm.Registration{Node: "n1", Add: []string{"alpha", "gamma"}})
	applyClaims(t, f, 3, at(10), "n1", claim("alpha", 10), claim("beta", 10))
	applyClaims(t, f, 4, at(11), "n2", claim("alpha", 11))
	applyClaims(t, f, 5, at(11), "n3", claim("gamma", -3), claim("delta", 11))
	register(t, f, 6, fsm.Registration{Node: "n3", Add: []string{"delta", "alpha"}})
	register(t, f, 7, fsm.Registration{Node: "n2", Remove: []string{"beta"}})
	return f
}

// registrations returns Registered for every job name in jobs.
func registrations(f *fsm.FSM, jobs ...string) map[string][]string {
	out := make(map[string][]string, len(jobs))
	for _, j := range jobs {
		out[j] = slices.Clone(f.Registered(j))
	}
	return out
}

var allJobs = []string{"alpha", "beta", "gamma", "delta", "unknown"}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	src := populated(t)
	data := snapshotBytes(t, src)

	dst := fsm.New(nil)
	if err := restore(t, dst, data); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got, want := dst.Jobs(), src.Jobs(); !maps.Equal(got, want) {
		t.Errorf("Jobs after restore:\n got %+v\nwant %+v", got, want)
	}
	if got, want := registrations(dst, allJobs...), registrations(src, allJobs...); !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("registrations after restore:\n got %q\nwant %q", got, want)
	}
	if got, want := dst.AppliedIndex(), src.AppliedIndex(); got != want || got != 7 {
		t.Errorf("AppliedIndex after restore = %d, want %d (source %d)", got, 7, want)
	}
	// Equal states must encode to equal bytes.
	if again := snapshotBytes(t, dst); !bytes.Equal(again, data) {
		t.Errorf("snapshot of the restored FSM differs from the original snapshot")
	}
}

// TestGrantRulesHoldAfterRestore checks that a restored replica refuses what
// the original would have refused and grants with fresh tokens.
func TestGrantRulesHoldAfterRestore(t *testing.T) {
	src := populated(t) // alpha: tick 11, holder n2, token 4
	dst := fsm.New(nil)
	if err := restore(t, dst, snapshotBytes(t, src)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	tests := []struct {
		name  string
		node  string
		claim fsm.Claim
		want  fsm.Outcome
	}{
		{"older tick is taken", "n1", claim("alpha", 10), fsm.Outcome{Reason: fsm.ReasonTaken, Holder: "n2", At: at(11)}},
		{"granted tick is taken", "n1", claim("alpha", 11), fsm.Outcome{Reason: fsm.ReasonTaken, Holder: "n2", At: at(11)}},
		{"holder repeat keeps its token", "n2", claim("alpha", 11), fsm.Outcome{Reason: fsm.ReasonRepeat, Token: 4, Holder: "n2", At: at(11)}},
		{"newer tick is granted", "n1", claim("alpha", 12), fsm.Outcome{Reason: fsm.ReasonGranted, Token: 8, Holder: "n1", At: at(12)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Apply to a copy of the restored state so cases are independent.
			f := fsm.New(nil)
			if err := restore(t, f, snapshotBytes(t, dst)); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			res := applyClaims(t, f, 8, at(12), tt.node, tt.claim)
			if res.Outcomes[0] != tt.want {
				t.Errorf("outcome = %+v, want %+v", res.Outcomes[0], tt.want)
			}
		})
	}
}

// TestRestoreReplacesState checks that Restore discards everything the FSM
// held before, rather than merging.
func TestRestoreReplacesState(t *testing.T) {
	src := fsm.New(nil)
	applyClaims(t, src, 1, at(1), "n9", claim("only", 1))
	register(t, src, 2, fsm.Registration{Node: "n9", Add: []string{"only"}})
	data := snapshotBytes(t, src)

	dst := populated(t)
	if err := restore(t, dst, data); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got, want := dst.Jobs(), src.Jobs(); !maps.Equal(got, want) {
		t.Errorf("Jobs after restore = %+v, want %+v", got, want)
	}
	for _, job := range allJobs {
		if got := dst.Registered(job); len(got) != 0 {
			t.Errorf("Registered(%q) = %q after restore, want none", job, got)
		}
	}
	if got := dst.Registered("only"); !slices.Equal(got, []string{"n9"}) {
		t.Errorf("Registered(only) = %q, want [n9]", got)
	}
	if dst.AppliedIndex() != 2 {
		t.Errorf("AppliedIndex = %d, want 2", dst.AppliedIndex())
	}
	// The restored inverse index must be usable: a reset of n9 unregisters it.
	register(t, dst, 3, fsm.Registration{Node: "n9", Reset: true})
	if got := dst.Registered("only"); len(got) != 0 {
		t.Errorf("Registered(only) = %q after reset, want none", got)
	}
}

func TestRestoreEmptyState(t *testing.T) {
	data := snapshotBytes(t, fsm.New(nil))
	dst := populated(t)
	if err := restore(t, dst, data); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if len(dst.Jobs()) != 0 || dst.AppliedIndex() != 0 {
		t.Errorf("after restoring an empty snapshot: Jobs %+v, AppliedIndex %d; want empty, 0", dst.Jobs(), dst.AppliedIndex())
	}
}

// TestSnapshotIsPointInTime checks that entries applied after Snapshot do
// not leak into what Persist writes.
func TestSnapshotIsPointInTime(t *testing.T) {
	f := populated(t)
	want := snapshotBytes(t, f)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	applyClaims(t, f, 8, at(12), "n1", claim("alpha", 12))
	register(t, f, 9, fsm.Registration{Node: "n1", Reset: true})
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	snap.Release()
	if !bytes.Equal(sink.Bytes(), want) {
		t.Errorf("Persist after further Applies wrote a different snapshot")
	}
}

func TestPersistWriteErrorCancelsSink(t *testing.T) {
	snap, err := populated(t).Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	boom := errors.New("disk full")
	sink := &memSink{failWrite: boom}
	if err := snap.Persist(sink); !errors.Is(err, boom) {
		t.Errorf("Persist error = %v, want one wrapping %v", err, boom)
	}
	if sink.cancelled != 1 || sink.closed != 0 {
		t.Errorf("sink cancelled %d and closed %d times, want 1 and 0", sink.cancelled, sink.closed)
	}
}

// TestRestoreGarbageKeepsState feeds Restore invalid snapshots and checks
// that each is rejected with the right error and the old state survives.
func TestRestoreGarbageKeepsState(t *testing.T) {
	withControl := populated(t)
	withControl.Apply(&raft.Log{Index: 8, Type: raft.LogCommand, Data: fsm.EncodePause(fsm.Pause{Job: "alpha", Paused: true})})
	// A late grant, so the snapshot has grant records and a late grant in
	// them (format 4).
	applyAnyOrder(t, withControl, 9, at(12), "n1", claim("beta", 12))
	applyAnyOrder(t, withControl, 10, at(12), "n2", claim("beta", 11))
	valid := snapshotBytes(t, withControl)
	if valid[0] != 4 {
		t.Fatalf("snapshot with grant records has version %d, want 4", valid[0])
	}

	type tc struct {
		name string
		data []byte
		want error
	}
	tests := []tc{
		{"empty", nil, fsm.ErrMalformed},
		{"version 0", append([]byte{0}, valid[1:]...), fsm.ErrUnsupportedVersion},
		{"version 5", append([]byte{5}, valid[1:]...), fsm.ErrUnsupportedVersion},
		{"all 0xff", bytes.Repeat([]byte{0xff}, 64), fsm.ErrUnsupportedVersion},
		// version 1, applied 0, then a job count no buffer could hold.
		{"huge job count", []byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, fsm.ErrMalformed},
		// version 1, applied 0, one job whose name is longer than the buffer.
		{"huge string length", []byte{1, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 'a', 'b', 'c', 'd', 'e'}, fsm.ErrMalformed},
		// version 1, applied 0, no jobs, a node count no buffer could hold.
		{"huge node count", []byte{1, 0, 0, 0xff, 0xff, 0x03}, fsm.ErrMalformed},
	}
	// Every strict prefix of a valid snapshot is truncated somewhere:
	// format 4 needs its grant records.
	for n := 1; n < len(valid); n++ {
		tests = append(tests, tc{fmt.Sprintf("truncated to %d of %d bytes", n, len(valid)), valid[:n], fsm.ErrMalformed})
	}
	for i, tt := range tests {
		f := populated(t)
		wantJobs, wantRegs := f.Jobs(), registrations(f, allJobs...)
		err := restore(t, f, tt.data)
		if !errors.Is(err, tt.want) {
			t.Errorf("case %d (%s): Restore error = %v, want one wrapping %v", i, tt.name, err, tt.want)
		}
		if got := f.Jobs(); !maps.Equal(got, wantJobs) {
			t.Errorf("case %d (%s): Jobs changed by a failed Restore: %+v", i, tt.name, got)
		}
		if got := registrations(f, allJobs...); !maps.EqualFunc(got, wantRegs, slices.Equal) {
			t.Errorf("case %d (%s): registrations changed by a failed Restore: %q", i, tt.name, got)
		}
		if f.AppliedIndex() != 7 {
			t.Errorf("case %d (%s): AppliedIndex changed by a failed Restore to %d", i, tt.name, f.AppliedIndex())
		}
	}
}

func TestRestoreReadErrorKeepsState(t *testing.T) {
	f := populated(t)
	wantJobs := f.Jobs()
	boom := errors.New("read failed")
	rc := &closeTracker{Reader: io.MultiReader(bytes.NewReader([]byte{1, 2, 3}), iotest.ErrReader(boom))}
	if err := f.Restore(rc); !errors.Is(err, boom) {
		t.Errorf("Restore error = %v, want one wrapping %v", err, boom)
	}
	if !rc.closed {
		t.Errorf("Restore did not close its reader on a read error")
	}
	if got := f.Jobs(); !maps.Equal(got, wantJobs) || f.AppliedIndex() != 7 {
		t.Errorf("failed Restore changed the state: Jobs %+v, AppliedIndex %d", got, f.AppliedIndex())
	}
}

// otherForms returns the encodings of the state in valid, a snapshot of
// f, that older builds wrote: f has no incarnations, no paused job, no
// run-now request, no history and no grant record and so is written in
// format 2. They are format 2 from before incarnations existed, and format
// 3 with an empty job control section (three zero counts), as builds
// before the rule that such a state is written in format 2 wrote it.
func otherForms(t *testing.T, valid []byte) map[string][]byte {
	t.Helper()
	if valid[0] != 2 || valid[len(valid)-1] != 0 {
		t.Fatalf("snapshot of populated starts with version %d and ends with %#x, want version 2 ending in an empty incarnation section", valid[0], valid[len(valid)-1])
	}
	v3 := append(slices.Clone(valid), 0, 0, 0)
	v3[0] = 3
	return map[string][]byte{
		"version 2 before incarnations": valid[:len(valid)-1],
		"version 3 without job control": v3,
	}
}

// TestRestoreSnapshotOfOlderFormat restores snapshots written by older
// versions: each must give the same state as the current form.
func TestRestoreSnapshotOfOlderFormat(t *testing.T) {
	orig := populated(t)
	valid := snapshotBytes(t, orig)
	for name, data := range otherForms(t, valid) {
		f := fsm.New(nil)
		if err := restore(t, f, data); err != nil {
			t.Fatalf("Restore of a %s snapshot: %v", name, err)
		}
		if got := snapshotBytes(t, f); !bytes.Equal(got, valid) {
			t.Fatalf("state restored from the %s format differs from the original", name)
		}
		for job, st := range f.Jobs() {
			want, _ := orig.Job(job)
			if st != want {
				t.Errorf("%s: job %s restored as %+v, want %+v", name, job, st, want)
			}
		}
	}
}

// TestSnapshotFormatFollowsJobControl checks that a state with job control
// (here one paused job) is written in format 3, which keeps it, and that
// resuming the job brings back format 2, which nodes of ProtocolBase read.
func TestSnapshotFormatFollowsJobControl(t *testing.T) {
	f := populated(t)
	f.Apply(&raft.Log{Index: 8, Type: raft.LogCommand, Data: fsm.EncodePause(fsm.Pause{Job: "alpha", Paused: true})})
	snap := snapshotBytes(t, f)
	if snap[0] != 3 {
		t.Fatalf("snapshot with a paused job has version %d, want 3", snap[0])
	}
	restored := fsm.New(nil)
	if err := restore(t, restored, snap); err != nil {
		t.Fatal(err)
	}
	if !restored.Paused("alpha") {
		t.Errorf("alpha not paused after restoring a format-3 snapshot")
	}
	f.Apply(&raft.Log{Index: 9, Type: raft.LogCommand, Data: fsm.EncodePause(fsm.Pause{Job: "alpha"})})
	if v := snapshotBytes(t, f)[0]; v != 2 {
		t.Errorf("snapshot after resuming the only paused job has version %d, want 2", v)
	}
}
