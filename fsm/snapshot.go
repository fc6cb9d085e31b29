package fsm

import (
	"fmt"
	"io"
	"slices"

	"github.com/hashicorp/raft"
)

// Snapshot format versions. The first byte of a snapshot says which one it
// is; Restore reads both.
const (
	// snapshotVersionTicks is the first format: a job's record held the
	// tick index of its latest grant but not the instant.
	snapshotVersionTicks = 1
	// snapshotVersionInstants is the second: the state machine's clock
	// follows the applied index, and each job's record starts with the
	// instant of its latest grant (LastAt).
	snapshotVersionInstants = 2
	// snapshotVersionJobControl is the third: version 2 followed by the
	// job control section (paused jobs, run-now requests, histories; see
	// encodeJobControl).
	snapshotVersionJobControl = 3
	// snapshotVersion is the current format: version 3 followed by the
	// grant records (encodeGrantRecords), which claims granted out of
	// order depend on. A build from before it must not restore such a
	// state, since it would apply plain claims without keeping the
	// records, so the records get a version of their own rather than a
	// section older builds would skip.
	snapshotVersion = 4
)

// legacyLastAt gives a job restored from a version-1 snapshot, which kept
// only the tick index, the instant its state must refuse up to. The exact
// instant is lost, so it errs late: a claim was granted at most its own
// window before its instant, and by default that window is one interval.
// Tick k's instant is k×Interval, and the grant came within about one
// interval of it, so GrantedAt/k is the interval to within one part in k.
// The result, GrantedAt plus that interval (at most MaxStartDeadline),
// refuses every instant the old rules could have granted by then with the
// default window, and costs at most the one tick after it.
func legacyLastAt(st JobState) int64 {
	lead := int64(MaxStartDeadline)
	if st.LastTick > 0 && st.GrantedAt > 0 {
		lead = min(st.GrantedAt/st.LastTick+1, lead)
	}
	return st.GrantedAt + lead
}

// snapshot is a point-in-time copy of the state, already encoded, so that
// Persist can run concurrently with new Applies without holding the lock.
type snapshot struct {
	data []byte
}

// Snapshot captures the state. Raft calls it on its FSM goroutine, so the
// copy is consistent with exactly the entries applied so far.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.halted != nil {
		return nil, f.halted
	}
	e := &encoder{buf: make([]byte, 0, 64+len(f.jobs)*56)}
	// Without job control state, write format 2, which nodes of
	// ProtocolBase can restore: a cluster that has not used the newer
	// commands, as during a rolling upgrade, stays readable to its older
	// members.
	// Likewise format 3 until a record is known, which takes an entry of
	// ProtocolAnyOrder. Names are sorted so that equal states encode to
	// equal bytes.
	names := make([]string, 0, len(f.jobs))
	recordsKnown := false
	for name, st := range f.jobs {
		names = append(names, name)
		recordsKnown = recordsKnown || st.record.known
	}
	slices.Sort(names)
	version := byte(snapshotVersionInstants)
	switch {
	case recordsKnown:
		version = snapshotVersion
	case len(f.paused) > 0 || len(f.runNow) > 0 || len(f.history) > 0:
		version = snapshotVersionJobControl
	}
	e.byte(version)
	e.uvarint(f.applied)
	e.varint(f.clock)

	e.uvarint(uint64(len(names)))
	for _, name := range names {
		st := f.jobs[name]
		e.string(name)
		e.varint(st.LastAt)
		e.varint(st.LastTick)
		e.string(st.Holder)
		e.uvarint(st.Token)
		e.varint(st.GrantedAt)
		e.varint(st.RunExpires)
		e.varint(st.RunTTL)
	}

	nodes := make([]string, 0, len(f.jobsByNode))
	for n := range f.jobsByNode {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	e.uvarint(uint64(len(nodes)))
	for _, n := range nodes {
		jobs := make([]string, 0, len(f.jobsByNode[n]))
		for j := range f.jobsByNode[n] {
			jobs = append(jobs, j)
		}
		slices.Sort(jobs)
		e.string(n)
		e.uvarint(uint64(len(jobs)))
		for _, j := range jobs {
			e.string(j)
		}
	}
	e.uvarint(f.term)
	lockNames := make([]string, 0, len(f.locks))
	for name := range f.locks {
		lockNames = append(lockNames, name)
	}
	slices.Sort(lockNames)
	e.uvarint(uint64(len(lockNames)))
	for _, name := range lockNames {
		st := f.locks[name]
		e.string(name)
		e.string(st.Owner)
		e.string(st.Node)
		e.uvarint(st.Token)
		e.varint(st.Expires)
		e.varint(st.TTL)
		e.uvarint(uint64(len(st.Waiters)))
		for _, w := range st.Waiters {
			e.string(w.Owner)
			e.string(w.Node)
			e.varint(w.TTL)
		}
	}
	e.uvarint(uint64(len(f.finishedOrder)))
	for _, fo := range f.finishedOrder {
		e.string(fo.owner)
		e.varint(fo.at)
		e.uvarint(fo.call)
	}
	encodeIncarnations(e, f.incarnations)
	if version >= snapshotVersionJobControl {
		f.encodeJobControlLocked(e)
	}
	if version >= snapshotVersion {
		encodeGrantRecords(e, names, f.jobs)
	}
	return &snapshot{data: e.buf}, nil
}

// Persist writes the snapshot to the sink and closes it.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("write snapshot: %w", err)
	}
	return sink.Close()
}

// Release is a no-op: the snapshot owns only its byte slice.
func (s *snapshot) Release() {}

// Restore replaces the whole state with a snapshot's. Raft guarantees no
// Apply runs concurrently with it. On error the old state is kept.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	d := &decoder{buf: data}
	v := d.byte()
	if d.err == nil && (v < snapshotVersionTicks || v > snapshotVersion) {
		return fmt.Errorf("%w: snapshot version %d", ErrUnsupportedVersion, v)
	}
	applied := d.uvarint()
	var clock int64
	if v >= snapshotVersionInstants {
		clock = d.varint()
	}
	jobs := make(map[string]*JobState)
	n := d.count(4)
	jobNames := make([]string, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		name := d.string()
		jobNames = append(jobNames, name)
		var st JobState
		if v >= snapshotVersionInstants {
			st.LastAt = d.varint()
		}
		st.LastTick = d.varint()
		st.Holder = d.string()
		st.Token = d.uvarint()
		st.GrantedAt = d.varint()
		st.RunExpires = d.varint()
		st.RunTTL = d.varint()
		if v == snapshotVersionTicks {
			st.LastAt = legacyLastAt(st)
		}
		jobs[name] = &st
	}
	type reg struct {
		node string
		jobs []string
	}
	var regs []reg
	n = d.count(2)
	for i := 0; i < n && d.err == nil; i++ {
		r := reg{node: d.string()}
		m := d.count(1)
		for j := 0; j < m && d.err == nil; j++ {
			r.jobs = append(r.jobs, d.string())
		}
		regs = append(regs, r)
	}
	term := d.uvarint()
	locks := make(map[string]*LockState)
	n = d.count(4)
	for i := 0; i < n && d.err == nil; i++ {
		name := d.string()
		st := &LockState{Owner: d.string(), Node: d.string(), Token: d.uvarint(), Expires: d.varint(), TTL: d.varint()}
		m := d.count(3)
		for j := 0; j < m && d.err == nil; j++ {
			st.Waiters = append(st.Waiters, Waiter{Owner: d.string(), Node: d.string(), TTL: d.varint()})
		}
		locks[name] = st
	}
	finished := make(map[string]uint64)
	var order []finishedOwner
	n = d.count(3)
	for i := 0; i < n && d.err == nil; i++ {
		fo := finishedOwner{owner: d.string(), at: d.varint(), call: d.uvarint()}
		finished[fo.owner] = fo.call
		order = append(order, fo)
	}
	incarnations := make(map[string]*incarnation)
	if d.err == nil && len(d.buf) > 0 { // snapshots from before owner incarnations end here
		incarnations = decodeIncarnations(d)
	}
	ctl := newJobControl()
	if v >= snapshotVersionJobControl {
		ctl = decodeJobControl(d)
	}
	if v >= snapshotVersion {
		decodeGrantRecords(d, jobNames, jobs)
	}
	if d.err != nil {
		return fmt.Errorf("restore snapshot: %w", d.err)
	}

	f.mu.Lock()
	f.jobs = jobs
	f.nodesByJob = make(map[string][]string)
	f.jobsByNode = make(map[string]map[string]struct{})
	for _, r := range regs {
		for _, j := range r.jobs {
			f.registerLocked(r.node, j)
		}
	}
	f.applied = applied
	f.clock = clock
	f.term = term
	old := f.locks
	f.locks = locks
	f.finished = finished
	f.finishedOrder = order
	f.incarnations = incarnations
	f.runNow, f.history = ctl.runNow, ctl.history
	f.wakeRunNowLocked()
	f.setPausedLocked(ctl.paused)
	// Tell the node about every lock the restore may have changed, including
	// ones it dropped, so local waiters and leases follow the new state.
	names := make([]string, 0, len(old)+len(locks))
	for name := range old {
		names = append(names, name)
	}
	for name := range locks {
		if _, ok := old[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		f.notifyLocked(name, applied)
	}
	restored := f.restored
	f.mu.Unlock()
	// Lock calls still waiting may have had their requests settled by
	// entries the snapshot replaces; the node asks LockOwner about each,
	// which it can only do once the lock is released.
	if restored != nil {
		restored()
	}
	return nil
}

// SetRestoreNotifier installs a function called, on Raft's FSM goroutine,
// after every Restore, with no lock held and before any later entry is
// applied, so it sees exactly the restored state. It must not block on
// Raft. Set it before Raft starts.
func (f *FSM) SetRestoreNotifier(fn func()) {
	f.mu.Lock()
	f.restored = fn
	f.mu.Unlock()
}
