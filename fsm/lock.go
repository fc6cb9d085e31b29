package fsm

import (
	"slices"
)

// Lock commands. Every lock decision uses the leader's stamped time of the
// entry being applied, never a local clock.
const (
	// CommandLockAcquire takes a lock, or queues for it.
	CommandLockAcquire CommandType = 3
	// CommandLockRenew extends a held lease.
	CommandLockRenew CommandType = 4
	// CommandLockRelease frees a held lock, or leaves its wait queue.
	CommandLockRelease CommandType = 5
	// CommandLockExpire frees every lease whose time has passed, handing
	// each lock to its first waiter. The leader proposes it when a lease
	// with waiters is due.
	CommandLockExpire CommandType = 6
	// CommandNodeRelease drops everything a gracefully leaving node holds:
	// its locks, its place in wait queues, its job registrations and its
	// run leases.
	CommandNodeRelease CommandType = 7
)

// LockOp is one lock request. Owner identifies one Lock call (one lease)
// and is never reused, so a late duplicate of a finished request cannot
// take the lock again.
type LockOp struct {
	Name  string
	Owner string
	Node  string
	// TTL is the lease length in nanoseconds (acquire only).
	TTL int64
	// Wait queues the owner if the lock is held (acquire only).
	Wait bool
	// Call identifies one release call (release only; 0 for none). propose
	// retries an entry whose reply was lost, so a release may be applied
	// twice; a repeat of the call that ended the lease is answered as the
	// first attempt was, while any other call is told the lease is lost.
	Call uint64
}

// EncodeLockOp encodes an acquire, renew or release.
func EncodeLockOp(t CommandType, op LockOp) []byte {
	e := newEncoder(t, 32+len(op.Name)+len(op.Owner)+len(op.Node))
	e.string(op.Name)
	e.string(op.Owner)
	e.string(op.Node)
	e.varint(op.TTL)
	e.bool(op.Wait)
	e.uvarint(op.Call)
	return e.buf
}

func decodeLockOp(d *decoder) (LockOp, error) {
	var op LockOp
	op.Name = d.string()
	op.Owner = d.string()
	op.Node = d.string()
	op.TTL = d.varint()
	op.Wait = d.bool()
	if d.err == nil && len(d.buf) > 0 { // entries from before Call end here
		op.Call = d.uvarint()
	}
	return op, d.err
}

// EncodeLockExpire encodes an expiry sweep.
func EncodeLockExpire() []byte { return newEncoder(CommandLockExpire, 0).buf }

// EncodeNodeRelease encodes the release of everything a node holds.
func EncodeNodeRelease(node string) []byte {
	return EncodeNodeReleaseKeeping(node, nil)
}

// EncodeNodeReleaseKeeping is EncodeNodeRelease, except that the run leases
// of the keep jobs stay held until they expire: a leaving node keeps the
// lease of a run it could not stop, so no other node starts the job while
// that run may still be going. With no keep jobs it encodes exactly what
// EncodeNodeRelease always did.
func EncodeNodeReleaseKeeping(node string, keep []string) []byte {
	e := newEncoder(CommandNodeRelease, len(node)+2)
	e.string(node)
	if len(keep) > 0 {
		// Entries from before the keep list end after the node name.
		e.uvarint(uint64(len(keep)))
		for _, job := range keep {
			e.string(job)
		}
	}
	return e.buf
}

// decodeNodeRelease reads a node release, with or without a keep list.
func decodeNodeRelease(d *decoder) (node string, keep map[string]struct{}, err error) {
	node = d.string()
	if d.err == nil && len(d.buf) > 0 {
		n := d.count(1)
		keep = make(map[string]struct{}, n)
		for i := 0; i < n && d.err == nil; i++ {
			keep[d.string()] = struct{}{}
		}
	}
	return node, keep, d.err
}

// LockStatus is the outcome of a lock command.
type LockStatus uint8

const (
	// LockAcquired means the owner holds the lock; Token is its fence.
	LockAcquired LockStatus = iota + 1
	// LockQueued means the owner waits in line; it will be granted the lock
	// by a later entry, in FIFO order.
	LockQueued
	// LockBusy means the lock is held and the owner asked not to wait.
	LockBusy
	// LockRenewed means the lease was extended.
	LockRenewed
	// LockReleased means the lock was freed or the owner left the queue.
	LockReleased
	// LockLost means the owner does not hold the lock (its lease expired,
	// it was released, or it never had it).
	LockLost
	// LockInvalid means the request is malformed.
	LockInvalid
)

// String returns the status's name.
func (s LockStatus) String() string {
	switch s {
	case LockAcquired:
		return "acquired"
	case LockQueued:
		return "queued"
	case LockBusy:
		return "busy"
	case LockRenewed:
		return "renewed"
	case LockReleased:
		return "released"
	case LockLost:
		return "lost"
	case LockInvalid:
		return "invalid"
	default:
		return "lock-status(?)"
	}
}

// LockResult answers a lock command.
type LockResult struct {
	Status LockStatus
	// Token is the lock's fencing token when Status is LockAcquired or
	// LockRenewed: the index of the entry that granted the current lease.
	Token uint64
	// Expires is the lease's expiry in leader time (Unix nanoseconds).
	Expires int64
}

// EncodeLockResult encodes a lock result for the RPC reply.
func EncodeLockResult(r *LockResult) []byte {
	e := &encoder{}
	e.byte(byte(r.Status))
	e.uvarint(r.Token)
	e.varint(r.Expires)
	return e.buf
}

// DecodeLockResult reverses EncodeLockResult.
func DecodeLockResult(b []byte) (*LockResult, error) {
	d := &decoder{buf: b}
	r := &LockResult{Status: LockStatus(d.byte()), Token: d.uvarint(), Expires: d.varint()}
	return r, d.err
}

// LockState is a lock's replicated state.
type LockState struct {
	// Owner is the lease that holds the lock; "" when free.
	Owner string
	// Node is the holder's node.
	Node string
	// Token is the index of the entry that granted the current lease.
	Token uint64
	// Expires is when the lease ends, in leader time.
	Expires int64
	// TTL is the lease length, reapplied on renewal.
	TTL int64
	// Waiters queue in FIFO order.
	Waiters []Waiter
}

// Waiter is one queued Lock call.
type Waiter struct {
	Owner string
	Node  string
	TTL   int64
}

// LockChange is reported to the notifier after each entry that changed a
// lock, so nodes can wake waiters and tell holders they lost a lease.
type LockChange struct {
	Name  string
	State LockState
	// Index is the index of the entry that made the change. A lease granted
	// by a later entry is not affected by it.
	Index uint64
}

// finishedMemory is how long, in leader time, a finished owner of the older
// random form is remembered (see lockowner.go for current owners), so a
// delayed duplicate of its acquire (a retry still in flight when the caller
// gave up) cannot take the lock after it was cancelled or released. It is
// far longer than any proposal's retry window.
const finishedMemory = int64(60 * 1e9)

func (f *FSM) lockLocked(name string) *LockState {
	st := f.locks[name]
	if st == nil {
		st = &LockState{}
		f.locks[name] = st
	}
	return st
}

// handOffLocked gives a free lock to its first waiter.
//
// If this entry already granted the lock once, the lock stays free with its
// waiters: a second grant would share the first one's token. The leader's
// expiry sweep, which sees a free lock with waiters as due at once, hands
// it on in the next entry.
func (f *FSM) handOffLocked(name string, st *LockState, index uint64, now int64) {
	st.Owner, st.Node, st.Token, st.Expires, st.TTL = "", "", 0, 0, 0
	if _, granted := f.entryLocks[name]; len(st.Waiters) > 0 && !granted {
		w := st.Waiters[0]
		st.Waiters = slices.Delete(st.Waiters, 0, 1)
		st.Owner, st.Node, st.Token, st.TTL, st.Expires = w.Owner, w.Node, index, w.TTL, now+w.TTL
		f.entryLocks[name] = struct{}{}
	}
	if st.Owner == "" && len(st.Waiters) == 0 {
		delete(f.locks, name)
	}
}

// finishLegacyLocked remembers that an owner of the older random form ended,
// and the release call that ended it (0 if none). Only entries from nodes
// of earlier versions create such owners.
func (f *FSM) finishLegacyLocked(owner string, now int64, call uint64) {
	if _, ok := f.finished[owner]; ok {
		return
	}
	f.finished[owner] = call
	f.finishedOrder = append(f.finishedOrder, finishedOwner{owner, now, call})
	// Leader time only moves forward within a term and is extended, not
	// rewound, across terms in practice; pruning from the front is enough.
	i := 0
	for i < len(f.finishedOrder) && now-f.finishedOrder[i].at > finishedMemory {
		delete(f.finished, f.finishedOrder[i].owner)
		i++
	}
	// Re-slicing, not deleting: shifting the whole queue on every finish
	// would cost O(owners in the last minute) per command. The dead prefix
	// is dropped when append next grows the array.
	f.finishedOrder = f.finishedOrder[i:]
}

type finishedOwner struct {
	owner string
	at    int64
	call  uint64
}

// expireLocked frees a lease whose time has passed and hands the lock on.
func (f *FSM) expireLocked(name string, st *LockState, index uint64, now int64) bool {
	if st.Owner != "" && now >= st.Expires {
		f.finishLocked(st.Owner, now, 0)
		f.handOffLocked(name, st, index, now)
		return true
	}
	return false
}

func (f *FSM) applyLockOp(t CommandType, index uint64, now int64, op LockOp) *LockResult {
	if op.Name == "" || op.Owner == "" || (t == CommandLockAcquire && op.TTL <= 0) {
		return &LockResult{Status: LockInvalid}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.lockLocked(op.Name)
	changed := f.expireLocked(op.Name, st, index, now)
	if f.locks[op.Name] == nil {
		st = f.lockLocked(op.Name)
	}
	var res *LockResult
	switch t {
	case CommandLockAcquire:
		// A waiter's repeated acquire (a retry of its own request) is not
		// a new request and is never refused as one.
		queued := slices.ContainsFunc(st.Waiters, func(w Waiter) bool { return w.Owner == op.Owner })
		switch {
		case st.Owner == op.Owner:
			res = &LockResult{Status: LockAcquired, Token: st.Token, Expires: st.Expires}
		case !queued && !f.admitLocked(op.Owner, now):
			// A duplicate of a request that already finished, or one
			// delayed beyond the owner's window: the caller retries
			// with a fresh owner.
			res = &LockResult{Status: LockLost}
		case st.Owner == "" && len(st.Waiters) == 0 && !f.grantedInEntry(op.Name):
			st.Owner, st.Node, st.Token, st.TTL, st.Expires = op.Owner, op.Node, index, op.TTL, now+op.TTL
			f.entryLocks[op.Name] = struct{}{}
			res = &LockResult{Status: LockAcquired, Token: index, Expires: st.Expires}
			changed = true
		case !op.Wait:
			res = &LockResult{Status: LockBusy}
		default:
			if !queued {
				st.Waiters = append(st.Waiters, Waiter{Owner: op.Owner, Node: op.Node, TTL: op.TTL})
				changed = true
			}
			res = &LockResult{Status: LockQueued}
		}
	case CommandLockRenew:
		if st.Owner == op.Owner {
			st.Expires = now + st.TTL
			res = &LockResult{Status: LockRenewed, Token: st.Token, Expires: st.Expires}
		} else {
			res = &LockResult{Status: LockLost}
		}
	case CommandLockRelease:
		i := slices.IndexFunc(st.Waiters, func(w Waiter) bool { return w.Owner == op.Owner })
		switch {
		case st.Owner == op.Owner:
			f.finishLocked(op.Owner, now, op.Call)
			f.handOffLocked(op.Name, st, index, now)
			res = &LockResult{Status: LockReleased}
			changed = true
		case i >= 0:
			f.finishLocked(op.Owner, now, op.Call)
			st.Waiters = slices.Delete(st.Waiters, i, i+1)
			res = &LockResult{Status: LockReleased}
			changed = true
		case f.releasedBy(op.Owner, op.Call):
			// A retry of the release call that was applied (its reply was
			// lost): answer as the first attempt was answered.
			res = &LockResult{Status: LockReleased}
		default:
			f.finishLocked(op.Owner, now, 0)
			res = &LockResult{Status: LockLost}
		}
	}
	if cur := f.locks[op.Name]; cur != nil && cur.Owner == "" && len(cur.Waiters) == 0 {
		delete(f.locks, op.Name)
	}
	if changed {
		f.notifyLocked(op.Name, index)
	}
	return res
}

func (f *FSM) isFinished(owner string) bool {
	_, ok := f.finished[owner]
	return ok
}

// applyLockExpire frees every lease that has run out.
func (f *FSM) applyLockExpire(index uint64, now int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	names := make([]string, 0)
	for name, st := range f.locks {
		if (st.Owner != "" && now >= st.Expires) || (st.Owner == "" && len(st.Waiters) > 0) {
			names = append(names, name)
		}
	}
	slices.Sort(names) // map order must not leak into the result
	for _, name := range names {
		st := f.locks[name]
		if st.Owner == "" {
			// Freed by an entry that had already granted it once.
			f.handOffLocked(name, st, index, now)
			f.notifyLocked(name, index)
			continue
		}
		if f.expireLocked(name, st, index, now) {
			f.notifyLocked(name, index)
		}
	}
}

func (f *FSM) grantedInEntry(name string) bool {
	_, ok := f.entryLocks[name]
	return ok
}

// applyNodeRelease frees everything a leaving node holds, except the run
// leases of the keep jobs, which expire by their TTL.
func (f *FSM) applyNodeRelease(index uint64, now int64, node string, keep map[string]struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	names := make([]string, 0, len(f.locks))
	for name := range f.locks {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		st := f.locks[name]
		changed := false
		kept := st.Waiters[:0]
		for _, w := range st.Waiters {
			if w.Node == node {
				f.finishLocked(w.Owner, now, 0)
				changed = true
				continue
			}
			kept = append(kept, w)
		}
		st.Waiters = kept
		if st.Node == node && st.Owner != "" {
			f.finishLocked(st.Owner, now, 0)
			f.handOffLocked(name, st, index, now)
			changed = true
		} else if st.Owner == "" && len(st.Waiters) == 0 {
			delete(f.locks, name)
		}
		if changed {
			f.notifyLocked(name, index)
		}
	}
	for job := range f.jobsByNode[node] {
		f.unregisterLocked(node, job)
	}
	for job, js := range f.jobs {
		if _, kept := keep[job]; kept {
			continue
		}
		if js.Holder == node && js.RunExpires != 0 {
			js.RunExpires = 0
		}
		if l := &js.record.late; l.holder == node && l.expires != 0 {
			l.expires = 0
		}
	}
}

// extendLeasesLocked gives every outstanding lock lease its full TTL
// again from the first entry of a new term, so a lease never expires early
// because the new leader's clock differs from the old one's or because
// renewals could not commit during the election.
//
// Run leases are left alone: they end at their own expiry. The holder of a
// run stops it by its own deadline (the send time of its last grant or
// renewal plus the TTL), which no extension here can move, so extending
// would only keep the job blocked after the election. When the holder was
// the leader that died, with its run finished but the end of its lease not
// yet committed, it would block every tick for a full RunLease after the
// new leader's first entry.
func (f *FSM) extendLeasesLocked(now int64) {
	for _, st := range f.locks {
		if st.Owner != "" {
			st.Expires = max(st.Expires, now+st.TTL)
		}
	}
}

func (f *FSM) notifyLocked(name string, index uint64) {
	if f.notify == nil {
		return
	}
	var st LockState
	if cur := f.locks[name]; cur != nil {
		st = *cur
		st.Waiters = slices.Clone(cur.Waiters)
	}
	f.notify(LockChange{Name: name, State: st, Index: index})
}

// Lock returns a lock's state, and false if it is free with no waiters.
func (f *FSM) Lock(name string) (LockState, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	st, ok := f.locks[name]
	if !ok {
		return LockState{}, false
	}
	out := *st
	out.Waiters = slices.Clone(st.Waiters)
	return out, true
}

// NextLockExpiry returns the earliest expiry, in leader time, among held
// locks that have waiters, and false if there is none. The leader proposes
// CommandLockExpire then, so a crashed holder's waiters do not wait forever.
func (f *FSM) NextLockExpiry() (int64, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var next int64
	found := false
	for _, st := range f.locks {
		if len(st.Waiters) == 0 {
			continue
		}
		due := st.Expires // zero for a free lock: due at once
		if st.Owner == "" {
			due = 0
		}
		if !found || due < next {
			next, found = due, true
		}
	}
	return next, found
}

// SetLockNotifier installs a function called, on Raft's apply goroutine,
// after every entry that changes a lock. It must not block. Set it before
// Raft starts.
func (f *FSM) SetLockNotifier(fn func(LockChange)) {
	f.mu.Lock()
	f.notify = fn
	f.mu.Unlock()
}
