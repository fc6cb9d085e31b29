package fsm

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// FSM is Interlock's raft.FSM. Raft calls Apply, Snapshot and Restore from
// its own goroutines, one at a time; every read method is safe to call
// concurrently with them.
type FSM struct {
	logger hclog.Logger

	mu sync.RWMutex
	// jobs holds each job's latest grant. Jobs no node registers are
	// forgotten once their last instant is old; see collectJobsLocked.
	// The values are pointers so that a grant or a lease update changes
	// the state in place with one map lookup: every replica applies a
	// claim for every tick of every job. No pointer leaves f.mu; readers
	// get copies.
	jobs map[string]*JobState
	// nodesByJob holds, for each job, the sorted names of the nodes that
	// registered it.
	nodesByJob map[string][]string
	// jobsByNode is the inverse of nodesByJob, so a Reset is cheap.
	jobsByNode map[string]map[string]struct{}
	applied    uint64
	// clock is the highest leader time, in Unix nanoseconds, of any entry
	// applied. Unlike one entry's time it never goes back, which the grant
	// rules and the job collector rely on.
	clock int64

	// locks holds every held or awaited lock.
	locks map[string]*LockState
	// finished remembers owners whose lease ended, with finishedOrder
	// giving the pruning order. The value is the release call that ended
	// it, if any, so a retry of that call is answered alike.
	finished      map[string]uint64
	finishedOrder []finishedOwner
	// incarnations bounds the memory of current owners; see lockowner.go.
	incarnations map[string]*incarnation
	// term is the Raft term of the last command applied; a higher one
	// means a new leader, whose first entry extends every lease.
	term   uint64
	notify func(LockChange)
	// restored is called after Restore; see SetRestoreNotifier.
	restored func()

	// paused holds the paused jobs; runNow each job's pending run-now
	// request; history each job's last HistoryLen finished runs, oldest
	// first. See jobcontrol.go and history.go.
	paused map[string]struct{}
	// pausedView publishes paused, which is copied on write, to Paused.
	pausedView atomic.Pointer[map[string]struct{}]
	runNow     map[string]RunNowRequest
	history    map[string][]HistoryEntry
	// runNowWake is closed, and replaced, whenever a run-now request is
	// recorded or a restore replaces the pending set; see RunNowChanged.
	runNowWake chan struct{}

	// entryLocks records the locks the entry being applied has granted;
	// see beginEntry. The jobs it granted need no such record: their
	// state holds the entry's index as its Token (see grant).
	entryLocks map[string]struct{}

	// claims is reused by every claim entry for its decoded claims, whose
	// job names are views into the entry (see decodeClaimViews).
	claims []claimView

	// halted is set when an entry of a newer protocol arrives, and onHalt
	// is told; see haltLocked in protocol.go.
	halted error
	onHalt func(error)
}

var _ raft.FSM = (*FSM)(nil)

// New returns an empty state machine. A nil logger discards logs.
func New(logger hclog.Logger) *FSM {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &FSM{
		logger:       logger,
		jobs:         make(map[string]*JobState),
		nodesByJob:   make(map[string][]string),
		jobsByNode:   make(map[string]map[string]struct{}),
		locks:        make(map[string]*LockState),
		entryLocks:   make(map[string]struct{}),
		finished:     make(map[string]uint64),
		incarnations: make(map[string]*incarnation),
		paused:       make(map[string]struct{}),
		runNow:       make(map[string]RunNowRequest),
		runNowWake:   make(chan struct{}),
		history:      make(map[string][]HistoryEntry),
	}
}

// Apply applies one committed log entry. It returns *ClaimResult for a
// claim batch, nil for a registration, and an error for an entry it cannot
// decode; the error reaches whoever proposed the entry, and the state is left
// unchanged. An entry of a command type or encoding this build does not know
// halts the state machine instead (haltLocked): from then on every entry is
// refused with an error wrapping ErrHalted.
func (f *FSM) Apply(l *raft.Log) interface{} {
	if err := f.Halted(); err != nil {
		return err
	}
	res := f.apply(l)
	if err := haltCause(res); err != nil {
		return f.halt(l.Index, err)
	}
	f.markApplied(l.Index)
	return res
}

// haltCause returns the error in an Apply result, alone or in a batch, that
// says the entry is newer than this build, or nil.
func haltCause(res interface{}) error {
	switch r := res.(type) {
	case error:
		if haltsApply(r) {
			return r
		}
	case *BatchResult:
		for _, x := range r.Results {
			if err, ok := x.(error); ok && haltsApply(err) {
				return err
			}
		}
	}
	return nil
}

func (f *FSM) apply(l *raft.Log) interface{} {
	if l.Type != raft.LogCommand {
		return nil
	}
	d := &decoder{buf: l.Data}
	h, err := readHeader(d)
	if err != nil {
		f.logger.Error("rejected entry", "index", l.Index, "error", err)
		return err
	}
	f.observeTerm(l.Term, h.Now)
	f.beginEntry(h.Now)
	if h.Type == CommandBatch {
		return f.applyBatch(l.Index, h.Now, d)
	}
	return f.applyCommand(l.Index, h.Now, h.Type, d)
}

// beginEntry starts the per-entry record of the locks this entry granted,
// so that no entry grants one lock twice: the entry's index is the fencing
// token, and two grants sharing it would not be ordered (jobs are kept to
// one grant per entry by their Token; see grant). It also advances the
// state machine's clock to the entry's leader time.
func (f *FSM) beginEntry(now int64) {
	f.mu.Lock()
	clear(f.entryLocks)
	f.advanceClockLocked(now)
	f.mu.Unlock()
}

// applyCommand applies one command of an entry, alone or in a batch.
func (f *FSM) applyCommand(index uint64, now int64, t CommandType, d *decoder) interface{} {
	switch t {
	case CommandClaim, CommandClaimAnyOrder:
		return f.applyClaimEntry(index, now, d, t == CommandClaimAnyOrder)
	case CommandRegister:
		r, err := decodeRegistration(d)
		if err != nil {
			return fmt.Errorf("register entry %d: %w", index, err)
		}
		f.applyRegistration(r)
		return nil
	case CommandRuns:
		u, err := decodeRunUpdate(d)
		if err != nil {
			return fmt.Errorf("runs entry %d: %w", index, err)
		}
		return f.applyRunUpdate(now, u)
	case CommandLockAcquire, CommandLockRenew, CommandLockRelease:
		op, err := decodeLockOp(d)
		if err != nil {
			return fmt.Errorf("%s entry %d: %w", t, index, err)
		}
		return f.applyLockOp(t, index, now, op)
	case CommandLockExpire:
		f.applyLockExpire(index, now)
		return nil
	case CommandNodeRelease:
		node, keep, err := decodeNodeRelease(d)
		if err != nil {
			return fmt.Errorf("node-release entry %d: %w", index, err)
		}
		f.applyNodeRelease(index, now, node, keep)
		return nil
	case CommandPause:
		p, err := decodePause(d)
		if err != nil {
			return fmt.Errorf("pause entry %d: %w", index, err)
		}
		f.applyPause(p)
		return nil
	case CommandRunNow:
		job, err := decodeRunNow(d)
		if err != nil {
			return fmt.Errorf("run-now entry %d: %w", index, err)
		}
		return f.applyRunNow(index, now, job)
	default:
		return fmt.Errorf("%w: %s at index %d", ErrUnknownCommand, t, index)
	}
}

// observeTerm extends every lock lease when the entry comes from a new
// term; run leases keep their own expiry (see extendLeasesLocked).
func (f *FSM) observeTerm(term uint64, now int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if term > f.term {
		if f.term != 0 {
			f.extendLeasesLocked(now)
		}
		f.term = term
	}
}

// applyRunUpdate renews and ends run leases. Only the grant's holder may
// touch its lease, and only for the run it was granted, named by the tick
// index its claim carried.
func (f *FSM) applyRunUpdate(now int64, u RunUpdate) *RunUpdateResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	res := &RunUpdateResult{Renewed: make([]bool, len(u.Renew))}
	for i, r := range u.Renew {
		if expires, ttl := f.leaseLocked(r.Job, u.Node, r.Tick); expires != nil && *expires != 0 && now < *expires {
			*expires = now + ttl
			res.Renewed[i] = true
		}
	}
	for _, r := range u.Done {
		if expires, _ := f.leaseLocked(r.Job, u.Node, r.Tick); expires != nil {
			*expires = 0
		}
	}
	for _, fin := range u.Finished {
		f.recordLocked(u.Node, fin)
	}
	return res
}

// leaseLocked returns the expiry, in place, and the length of the run
// lease of job's run of tick that node was granted: the job's latest late
// grant's or its latest grant's. expires is nil if neither is that run.
// The caller holds f.mu.
func (f *FSM) leaseLocked(job, node string, tick int64) (expires *int64, ttl int64) {
	st := f.jobs[job]
	switch {
	case st == nil:
		return nil, 0
	case st.record.late.token != 0 && st.record.late.holder == node && st.record.late.tick == tick:
		return &st.record.late.expires, st.record.late.ttl
	case st.Holder == node && st.LastTick == tick:
		return &st.RunExpires, st.RunTTL
	}
	return nil, 0
}

func (f *FSM) markApplied(index uint64) {
	f.mu.Lock()
	if index > f.applied {
		f.applied = index
	}
	f.mu.Unlock()
}

// AppliedIndex returns the index of the last entry applied.
func (f *FSM) AppliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.applied
}

// Job returns the latest grant of a job, and false if it was never granted.
func (f *FSM) Job(name string) (JobState, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	st := f.jobs[name]
	if st == nil {
		return JobState{}, false
	}
	return *st, true
}

// Jobs returns a copy of every job's latest grant.
func (f *FSM) Jobs() map[string]JobState {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[string]JobState, len(f.jobs))
	for k, v := range f.jobs {
		out[k] = *v
	}
	return out
}

// Registered returns the sorted names of the nodes that registered a job.
// The slice is shared and must not be modified.
func (f *FSM) Registered(job string) []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.nodesByJob[job]
}

// NotRegisteredBy returns the jobs, in their order, that node has not
// registered. It takes the state machine's lock once for all of them.
func (f *FSM) NotRegisteredBy(node string, jobs []string) []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	set := f.jobsByNode[node]
	var out []string
	for _, job := range jobs {
		if _, ok := set[job]; !ok {
			out = append(out, job)
		}
	}
	return out
}

func (f *FSM) applyRegistration(r Registration) {
	if r.Node == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Reset {
		for job := range f.jobsByNode[r.Node] {
			f.unregisterLocked(r.Node, job)
		}
	}
	for _, job := range r.Remove {
		f.unregisterLocked(r.Node, job)
	}
	for _, job := range r.Add {
		if job == "" {
			continue
		}
		f.registerLocked(r.Node, job)
	}
}

func (f *FSM) registerLocked(node, job string) {
	set := f.jobsByNode[node]
	if set == nil {
		set = make(map[string]struct{})
		f.jobsByNode[node] = set
	}
	if _, ok := set[job]; ok {
		return
	}
	set[job] = struct{}{}
	// Copy on write: readers hold the old slice without the lock.
	old := f.nodesByJob[job]
	nodes := make([]string, 0, len(old)+1)
	nodes = append(nodes, old...)
	nodes = append(nodes, node)
	slices.Sort(nodes)
	f.nodesByJob[job] = nodes
}

func (f *FSM) unregisterLocked(node, job string) {
	set := f.jobsByNode[node]
	if _, ok := set[job]; !ok {
		return
	}
	delete(set, job)
	if len(set) == 0 {
		delete(f.jobsByNode, node)
	}
	old := f.nodesByJob[job]
	nodes := make([]string, 0, len(old))
	for _, n := range old {
		if n != node {
			nodes = append(nodes, n)
		}
	}
	if len(nodes) == 0 {
		delete(f.nodesByJob, job)
		return
	}
	f.nodesByJob[job] = nodes
}
