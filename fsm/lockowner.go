package fsm

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Lock owners are named node/incarnation/sequence: incarnation is random per
// Node instance and sequence counts that instance's Lock calls from 1. The
// state machine then needs no memory per finished owner: per incarnation it
// keeps the highest sequence seen and which of the seenWindow sequences
// below it were seen, and refuses an acquire of a sequence it has seen (or
// that fell below the window) unless that owner still holds or awaits the
// lock. A delayed duplicate of a finished request is therefore refused, and
// a request merely reordered behind a later one of the same node is still
// accepted when it lands within the window. Owners in any other form (from
// entries and snapshots written before this scheme) keep the older rule: a
// finished owner is remembered for finishedMemory of leader time.
const (
	// seenWindow is how many sequences below the highest one an incarnation
	// tracks one by one. A node has at most a few hundred Lock calls in
	// flight, so a reordering that exceeds it only costs the caller a retry.
	seenWindow = 1024
	// releaseMemory is how many recent release calls an incarnation
	// remembers, so that a retried release (its first reply was lost) is
	// answered as the first attempt was.
	releaseMemory = 128
	// incarnationMemory is how long, in leader time, an incarnation with no
	// new request is remembered. Like finishedMemory it is far longer than
	// any proposal's retry window, so no duplicate outlives its record.
	incarnationMemory = int64(10 * 60 * 1e9)
	// maxIncarnations bounds the records even if nodes restart faster than
	// incarnationMemory forgets them; the least recently seen go first.
	maxIncarnations = 1024
)

// OwnerStatus says where one Lock call stands in the replicated state.
type OwnerStatus uint8

const (
	// OwnerPending means the owner's acquire has not been applied yet: the
	// caller should keep waiting for it.
	OwnerPending OwnerStatus = iota + 1
	// OwnerHolds means the owner holds the lock.
	OwnerHolds
	// OwnerQueued means the owner waits in the lock's queue.
	OwnerQueued
	// OwnerSettled means the owner neither holds nor awaits the lock and can
	// never again: its lease ended, it was withdrawn, or its acquire was
	// refused. A Lock call waiting for it must give up or retry anew.
	OwnerSettled
)

// String returns the status's name.
func (s OwnerStatus) String() string {
	switch s {
	case OwnerPending:
		return "pending"
	case OwnerHolds:
		return "holds"
	case OwnerQueued:
		return "queued"
	case OwnerSettled:
		return "settled"
	default:
		return "owner-status(?)"
	}
}

// incarnation is the state machine's memory of one Node instance's owners.
type incarnation struct {
	// high is the highest sequence seen in an acquire or release.
	high uint64
	// seen has bit s%seenWindow set if sequence s in (high-seenWindow, high]
	// was seen.
	seen [seenWindow / 64]uint64
	// lastSeen is the leader time of the last request of this incarnation.
	lastSeen int64
	// releases holds up to releaseMemory recent release calls, a ring whose
	// oldest element is at next once it is full.
	releases []releaseCall
	next     int
}

type releaseCall struct {
	seq, call uint64
}

// parseOwner splits a node/incarnation/sequence owner. ok is false for any
// other form, such as the random owners of older versions.
func parseOwner(owner string) (inc string, seq uint64, ok bool) {
	i := strings.LastIndexByte(owner, '/')
	if i <= 0 || i == len(owner)-1 || strings.IndexByte(owner[:i], '/') <= 0 {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(owner[i+1:], 10, 64)
	if err != nil || seq == 0 {
		return "", 0, false
	}
	return owner[:i], seq, true
}

// stale reports whether seq was seen or fell below the window.
func (r *incarnation) stale(seq uint64) bool {
	if seq > r.high {
		return false
	}
	if r.high-seq >= seenWindow {
		return true
	}
	return r.seen[(seq%seenWindow)/64]&(1<<(seq%64)) != 0
}

// mark records seq as seen, sliding the window forward if seq is new.
func (r *incarnation) mark(seq uint64, now int64) {
	if seq > r.high {
		if seq-r.high >= seenWindow {
			r.seen = [seenWindow / 64]uint64{}
		} else {
			for s := r.high + 1; s < seq; s++ {
				r.seen[(s%seenWindow)/64] &^= 1 << (s % 64)
			}
		}
		r.high = seq
		r.seen[(seq%seenWindow)/64] &^= 1 << (seq % 64)
	}
	r.lastSeen = max(r.lastSeen, now)
	if r.high-seq < seenWindow {
		r.seen[(seq%seenWindow)/64] |= 1 << (seq % 64)
	}
}

func (r *incarnation) rememberRelease(seq, call uint64) {
	if len(r.releases) < releaseMemory {
		r.releases = append(r.releases, releaseCall{seq, call})
		return
	}
	r.releases[r.next] = releaseCall{seq, call}
	r.next = (r.next + 1) % releaseMemory
}

func (r *incarnation) released(seq, call uint64) bool {
	return slices.Contains(r.releases, releaseCall{seq, call})
}

// orderedReleases returns the remembered releases oldest first.
func (r *incarnation) orderedReleases() []releaseCall {
	return append(slices.Clone(r.releases[r.next:]), r.releases[:r.next]...)
}

// incarnationLocked returns the record of inc, creating it if needed. A new
// record first drops the ones unseen for incarnationMemory and, at
// maxIncarnations, the least recently seen eighth; records are created
// rarely (once per Node instance), so the scan costs nothing per lock
// operation.
func (f *FSM) incarnationLocked(inc string, now int64) *incarnation {
	if r := f.incarnations[inc]; r != nil {
		return r
	}
	for k, r := range f.incarnations {
		if now-r.lastSeen > incarnationMemory {
			delete(f.incarnations, k)
		}
	}
	if len(f.incarnations) >= maxIncarnations {
		// Drop an eighth at once, least recently seen first (ties by
		// name, so every replica drops the same), to sort rarely.
		keys := make([]string, 0, len(f.incarnations))
		for k := range f.incarnations {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(x, y string) int {
			if c := cmp.Compare(f.incarnations[x].lastSeen, f.incarnations[y].lastSeen); c != 0 {
				return c
			}
			return strings.Compare(x, y)
		})
		for _, k := range keys[:len(keys)-maxIncarnations*7/8] {
			delete(f.incarnations, k)
		}
	}
	r := &incarnation{lastSeen: now}
	f.incarnations[inc] = r
	return r
}

// admitLocked decides whether an acquire by an owner that neither holds nor
// awaits the lock may proceed, and records it as seen.
func (f *FSM) admitLocked(owner string, now int64) bool {
	inc, seq, ok := parseOwner(owner)
	if !ok {
		return !f.isFinished(owner)
	}
	r := f.incarnationLocked(inc, now)
	if r.stale(seq) {
		return false
	}
	r.mark(seq, now)
	return true
}

// finishLocked records that owner's lease or queue place ended, by the
// release call call (0 if none), so a late duplicate of its acquire is
// refused and a retry of the call is answered alike.
func (f *FSM) finishLocked(owner string, now int64, call uint64) {
	inc, seq, ok := parseOwner(owner)
	if !ok {
		f.finishLegacyLocked(owner, now, call)
		return
	}
	r := f.incarnationLocked(inc, now)
	r.mark(seq, now)
	if call != 0 {
		r.rememberRelease(seq, call)
	}
}

// releasedBy reports whether call is the release call that ended owner.
func (f *FSM) releasedBy(owner string, call uint64) bool {
	if call == 0 {
		return false
	}
	inc, seq, ok := parseOwner(owner)
	if !ok {
		c, found := f.finished[owner]
		return found && c == call
	}
	r := f.incarnations[inc]
	return r != nil && r.released(seq, call)
}

// LockOwner returns where owner's request for lock name stands, and the
// lock's token if owner holds it. A node asks after installing a snapshot,
// to wake or fail Lock calls whose requests the snapshot settled.
func (f *FSM) LockOwner(name, owner string) (OwnerStatus, uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if st := f.locks[name]; st != nil {
		if st.Owner == owner {
			return OwnerHolds, st.Token
		}
		if slices.ContainsFunc(st.Waiters, func(w Waiter) bool { return w.Owner == owner }) {
			return OwnerQueued, 0
		}
	}
	inc, seq, ok := parseOwner(owner)
	switch {
	case !ok && f.isFinished(owner):
		return OwnerSettled, 0
	case !ok:
		return OwnerPending, 0
	}
	if r := f.incarnations[inc]; r != nil && r.stale(seq) {
		return OwnerSettled, 0
	}
	return OwnerPending, 0
}

func encodeIncarnations(e *encoder, recs map[string]*incarnation) {
	keys := make([]string, 0, len(recs))
	for k := range recs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	e.uvarint(uint64(len(keys)))
	for _, k := range keys {
		r := recs[k]
		e.string(k)
		e.uvarint(r.high)
		e.varint(r.lastSeen)
		for _, w := range r.seen {
			e.uvarint(w)
		}
		rel := r.orderedReleases()
		e.uvarint(uint64(len(rel)))
		for _, c := range rel {
			e.uvarint(c.seq)
			e.uvarint(c.call)
		}
	}
}

func decodeIncarnations(d *decoder) map[string]*incarnation {
	recs := make(map[string]*incarnation)
	n := d.count(3 + seenWindow/64)
	for i := 0; i < n && d.err == nil; i++ {
		k := d.string()
		r := &incarnation{high: d.uvarint(), lastSeen: d.varint()}
		for j := range r.seen {
			r.seen[j] = d.uvarint()
		}
		m := d.count(2)
		if m > releaseMemory {
			d.fail("release memory")
		}
		for j := 0; j < m && d.err == nil; j++ {
			r.rememberRelease(d.uvarint(), d.uvarint())
		}
		recs[k] = r
	}
	return recs
}
