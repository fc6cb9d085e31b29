package fsm

import (
	"fmt"
	"time"
)

// MaxStartDeadline is the widest start window a claim may carry: its
// Deadline may be at most this long after its instant At. The state machine
// refuses a wider claim as invalid, and refuses as expired any claim whose
// instant is older than this before the latest leader time it has applied.
// That second rule is what lets it forget a job (see collectJobs): an
// instant that old can never be granted again, whatever state remains.
//
// Two days lets a daily job keep its default window of one interval, with
// a day to spare.
const MaxStartDeadline = 48 * time.Hour

// Reason says why a claim was or was not granted.
type Reason uint8

const (
	// ReasonGranted means this entry granted the claim.
	ReasonGranted Reason = iota
	// ReasonRepeat means the same node already holds this exact (job,
	// instant), granted by an earlier entry or earlier in the same entry,
	// whose token is returned again. A node that lost the reply to its first
	// claim retries safely this way, and so does a copy of the claim that
	// reached the leader twice.
	ReasonRepeat
	// ReasonTaken means the instant was already granted, or a later one
	// was and the record of the job's recent grants cannot vouch that this
	// one never was (see ReasonSuperseded).
	ReasonTaken
	// ReasonExpired means the leader's clock had passed the claim's deadline,
	// or the claim's instant is more than MaxStartDeadline older than the
	// latest leader time applied.
	ReasonExpired
	// ReasonEarly means the claim is for a tick too far in the leader's
	// future, which happens when the claimer's clock runs ahead. Refusing it
	// keeps a fast clock from blocking the ticks before it.
	ReasonEarly
	// ReasonDuplicate means the entry already granted the job for an
	// earlier instant than the claim's; only the first grant counts, so one
	// entry never yields two grants sharing one token for one job. (A claim
	// for that instant or an earlier one is refused as after any grant:
	// taken or superseded.)
	ReasonDuplicate
	// ReasonInvalid means the claim itself is malformed: an empty job name or
	// node, a deadline before the instant, a negative lease, or a window
	// wider than MaxStartDeadline.
	ReasonInvalid
	// ReasonBusy means an exclusive claim found the job's previous run
	// still holding its run lease, so the tick is skipped rather than run
	// alongside it on another node.
	ReasonBusy
	// ReasonPaused means the job is paused cluster-wide (CommandPause):
	// no tick of it is granted until it is resumed.
	ReasonPaused
	// ReasonSuperseded means a later instant of the job was granted and
	// this one never was, and the claim was plain (CommandClaim), whose
	// instants are granted in order only: this one never will be, and its
	// tick ran nowhere. An any-order claim is granted instead. The state
	// machine tells it from ReasonTaken only for an instant its record of
	// the job's recent grants covers (JobState.Granted); an older one is
	// refused as taken. A build from before this reason treats it as any
	// refusal it does not know.
	ReasonSuperseded
)

// String returns the reason's name, for logs and errors.
func (r Reason) String() string {
	switch r {
	case ReasonGranted:
		return "granted"
	case ReasonRepeat:
		return "repeat"
	case ReasonTaken:
		return "taken"
	case ReasonExpired:
		return "expired"
	case ReasonEarly:
		return "early"
	case ReasonDuplicate:
		return "duplicate"
	case ReasonInvalid:
		return "invalid"
	case ReasonBusy:
		return "busy"
	case ReasonPaused:
		return "paused"
	case ReasonSuperseded:
		return "superseded"
	default:
		return fmt.Sprintf("reason(%d)", uint8(r))
	}
}

// Outcome is the state machine's answer to one claim.
type Outcome struct {
	Reason Reason
	// Token is the fencing token of the grant: the Raft index of the entry
	// that granted it. Zero unless Granted.
	Token uint64
	// Holder and At describe the job's latest grant after this entry (its
	// holder and scheduled instant), so a refused claimer learns who holds
	// what; for a busy refusal, the grant whose run lease refused it,
	// which is a late grant's when only that one's lease is live.
	Holder string
	At     int64
}

// Granted reports whether the claimer may run the tick.
func (o Outcome) Granted() bool { return o.Reason == ReasonGranted || o.Reason == ReasonRepeat }

// ClaimResult is what applying a ClaimBatch returns: one Outcome per claim,
// in the batch's order.
type ClaimResult struct {
	Index    uint64
	Outcomes []Outcome
}

// JobState is the state machine's record of a job's latest grant.
type JobState struct {
	// LastAt is the scheduled instant of the latest grant, in Unix
	// nanoseconds: the job's tick identity. A claim for this instant or an
	// earlier one is not granted again, whatever interval it was computed
	// with.
	LastAt int64
	// LastTick is the tick index the granted claim carried. It only names
	// the run for run lease updates (RunRef) and logs; grants never compare
	// it, because an index means nothing once the interval changes.
	LastTick int64
	Holder   string
	Token    uint64
	// GrantedAt is the leader's clock, in Unix nanoseconds, in the granting
	// entry.
	GrantedAt int64
	// RunExpires is when the run lease of the latest grant ends, in leader
	// time; zero when the run finished or the claim was not exclusive.
	RunExpires int64
	// RunTTL is the run lease's length, reapplied on renewal.
	RunTTL int64
	// record is the job's grants before the latest (see Granted). Only
	// refusal reasons read it: no grant depends on it.
	record grantRecord
}

// Running reports whether a run lease of the job is live at leader time
// now: the latest grant's, or that of a grant made out of order.
func (s JobState) Running(now int64) bool {
	return s.latestRunning(now) || s.record.late.running(now)
}

// latestRunning reports whether the latest grant's run lease is live at
// leader time now.
func (s JobState) latestRunning(now int64) bool { return s.RunExpires != 0 && now < s.RunExpires }

// grant applies the grant rules to one claim. It must stay a pure function
// of the state, the entry's index and time, the claim, and anyOrder, which
// says whether the claim came in a CommandClaimAnyOrder entry. The caller
// holds f.mu and has advanced f.clock to the entry's time.
//
// It looks the job up once: its state is changed in place through the
// pointer. A job this entry already granted is known by its Token or its
// late grant's token, which is then the entry's index: Raft gives every
// entry its own index, and no other command sets a token, so it marks
// exactly the jobs that an earlier claim of the same entry, in this
// command or an earlier one of its batch, was granted.
func (f *FSM) grant(index uint64, now int64, node string, c *claimView, anyOrder bool) Outcome {
	if len(c.job) == 0 || node == "" || c.deadline < c.at || c.leaseTTL < 0 || c.deadline-c.at > int64(MaxStartDeadline) {
		return Outcome{Reason: ReasonInvalid}
	}
	// The conversion in the index expression does not copy the name.
	st := f.jobs[string(c.job)]
	var holder string
	var lastAt int64
	var late, superseded bool
	if st != nil {
		holder, lastAt = st.Holder, st.LastAt
		// A repeat is answered first, even when this very entry made the
		// grant: two copies of one claim can land in one merged entry (a
		// forward the follower gave up on, still queued on the leader, or an
		// in-flight batch a demoted leader forwards again), and both must
		// learn the one grant. It is the same grant with the same token, so
		// this never gives one job two grants in one entry.
		if h, token, ok := st.GrantOf(c.at); ok && h == node {
			return Outcome{Reason: ReasonRepeat, Token: token, Holder: holder, At: lastAt}
		}
		if c.at <= st.LastAt {
			// An instant at or before the latest grant is granted only if
			// the record shows it never was, and then only to a claim that
			// may be granted out of order. A plain claim for it is refused,
			// as superseded: its tick ran nowhere. Either is judged after
			// the expiry test, because a job's state recreated after the
			// collector forgot it knows nothing of instants that old.
			granted, known := st.Granted(c.at)
			if granted || !known {
				return Outcome{Reason: ReasonTaken, Holder: holder, At: lastAt}
			}
			late, superseded = anyOrder, !anyOrder
		}
		if !superseded && (st.Token == index || st.record.late.token == index) {
			// Once this entry granted the job, another grant of it would
			// share the entry's index as its token.
			return Outcome{Reason: ReasonDuplicate, Holder: holder, At: lastAt}
		}
	}
	// The second test uses the highest leader time applied, not this
	// entry's: a new leader's clock may lag its predecessor's, and an
	// instant the collector may already have forgotten must stay refused.
	if now > c.deadline || c.at < f.clock-int64(MaxStartDeadline) {
		return Outcome{Reason: ReasonExpired, Holder: holder, At: lastAt}
	}
	if superseded {
		return Outcome{Reason: ReasonSuperseded, Holder: holder, At: lastAt}
	}
	// The tolerated lead equals the claim's own window, so a claimer whose
	// clock is ahead by less than one deadline window still gets its grant.
	if now < c.at-(c.deadline-c.at) {
		return Outcome{Reason: ReasonEarly, Holder: holder, At: lastAt}
	}
	if _, paused := f.paused[string(c.job)]; paused {
		return Outcome{Reason: ReasonPaused, Holder: holder, At: lastAt}
	}
	if c.exclusive && st != nil && st.Running(now) {
		if !st.latestRunning(now) {
			return st.record.late.busy()
		}
		return Outcome{Reason: ReasonBusy, Holder: holder, At: lastAt}
	}
	if late && st.record.late.running(now) {
		// The state keeps one late grant, and this one would take the
		// place of a late run that still holds its lease: dropping that
		// lease would let the job's next exclusive claim start beside it.
		// Only replicas configured apart meet this (a job's claims are
		// all exclusive or all not).
		return st.record.late.busy()
	}
	if late {
		f.grantLate(index, now, node, c, st)
		return Outcome{Reason: ReasonGranted, Token: index, Holder: node, At: c.at}
	}
	var rec grantRecord // unknown: see grantRecord for why a plain claim keeps it so
	switch {
	case st == nil:
		// A new job: the one place the name is copied out of the entry.
		st = new(JobState)
		f.jobs[string(c.job)] = st
		if anyOrder {
			rec = newJobRecord()
		}
	case st.record.known || anyOrder:
		rec = st.record.pushed(st.LastAt).withoutStaleLate(now)
	}
	*st = JobState{LastAt: c.at, LastTick: c.tick, Holder: node, Token: index, GrantedAt: now, record: rec}
	if c.exclusive && c.leaseTTL > 0 {
		st.RunTTL = c.leaseTTL
		st.RunExpires = now + c.leaseTTL
	}
	if len(f.runNow) > 0 {
		f.settleRunNowLocked(string(c.job), c.at)
	}
	return Outcome{Reason: ReasonGranted, Token: index, Holder: node, At: c.at}
}

// grantLate grants claim c for an instant before the job's latest grant,
// which the job's record shows was never granted. The latest grant stays
// what the state describes; the record keeps the new grant's instant, and
// the grant itself as the job's late grant, with its run lease for an
// exclusive claim. A late grant made earlier is dropped from that place:
// its lease was over, or this one would have been refused as busy. The
// caller holds f.mu.
func (f *FSM) grantLate(index uint64, now int64, node string, c *claimView, st *JobState) {
	rec := st.record.inserted(c.at)
	rec.late = lateGrant{at: c.at, tick: c.tick, holder: node, token: index}
	if c.exclusive && c.leaseTTL > 0 {
		rec.late.ttl = c.leaseTTL
		rec.late.expires = now + c.leaseTTL
	}
	st.record = rec
	if len(f.runNow) > 0 {
		f.settleRunNowLocked(string(c.job), c.at)
	}
}

// applyClaimEntry decodes and applies a claim batch. A batch that does not
// decode is refused whole, leaving the state unchanged.
func (f *FSM) applyClaimEntry(index uint64, now int64, d *decoder, anyOrder bool) interface{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	node, claims, err := decodeClaimViews(d, f.claims[:0])
	// Drop the views into the entry, so the buffer kept for the next one
	// does not hold the entry's bytes.
	defer func() { clear(claims); f.claims = claims[:0] }()
	if err != nil {
		return fmt.Errorf("claim entry %d: %w", index, err)
	}
	res := &ClaimResult{Index: index, Outcomes: make([]Outcome, len(claims))}
	for i := range claims {
		res.Outcomes[i] = f.grant(index, now, node, &claims[i], anyOrder)
	}
	return res
}

// EncodeClaimResult encodes a result for the trip from the leader back to
// the follower that forwarded the claims.
func EncodeClaimResult(r *ClaimResult) []byte {
	e := &encoder{buf: make([]byte, 0, 16+len(r.Outcomes)*16)}
	e.uvarint(r.Index)
	e.uvarint(uint64(len(r.Outcomes)))
	for _, o := range r.Outcomes {
		e.byte(byte(o.Reason))
		e.uvarint(o.Token)
		e.string(o.Holder)
		e.varint(o.At)
	}
	return e.buf
}

// DecodeClaimResult reverses EncodeClaimResult.
func DecodeClaimResult(b []byte) (*ClaimResult, error) {
	d := &decoder{buf: b}
	r := &ClaimResult{Index: d.uvarint()}
	n := d.count(4)
	r.Outcomes = make([]Outcome, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		var o Outcome
		o.Reason = Reason(d.byte())
		o.Token = d.uvarint()
		// Most outcomes name the same holder or none: one string for a run
		// of them, not one allocation each.
		if i > 0 {
			o.Holder = d.stringLike(r.Outcomes[i-1].Holder)
		} else {
			o.Holder = d.string()
		}
		o.At = d.varint()
		r.Outcomes = append(r.Outcomes, o)
	}
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}
