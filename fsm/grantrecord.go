package fsm

import "math"

// grantsKept is how many grants of a job before the latest one its state
// remembers. A claim refused because a later instant of its job was
// granted is told whether its own instant was granted too (ReasonTaken)
// or never was (ReasonSuperseded), as long as the instant is no older
// than the oldest grant kept. Four covers a claim judged up to four ticks
// late, which a claim whose deadline is its interval, the default, never
// is; a longer record would cost every job's state and snapshot more for
// claims whose losses the scheduler already sees another way (expired).
const grantsKept = 4

// grantRecord is the recent history of a job's grants: the instants of
// the grants before the latest, newest first, and how far back that list
// is complete. When known, every grant in (floor, LastAt] is LastAt or in
// prev, and an instant at or below floor may have been granted. The zero
// record knows nothing below the latest grant, which is what a state
// restored from a snapshot without records has. A record is a value:
// JobState copies carry it without sharing.
//
// A record becomes known only through a claim of an entry that may grant
// out of order (CommandClaimAnyOrder), never through a plain claim. That
// keeps it a function of the log alone: a replica restored from a snapshot
// of a build without records, and one that applied the same entries from
// the start, hold the same record at every index, so they make the same
// late grants. Once known, every grant keeps it up to date.
type grantRecord struct {
	prev  [grantsKept]int64
	n     uint8
	known bool
	floor int64
	// late is the latest grant made after a later instant of the job
	// had been granted; token 0 when there is none worth keeping.
	late lateGrant
}

// lateGrant is a grant made out of order: after a later instant of its job
// had been granted. The job's state describes its latest grant, so it keeps
// the latest late one beside it. Its run lease holds off the job's next
// exclusive grant as the latest grant's does, its holder renews and
// releases that lease by tick, and a repeat of its claim learns the grant.
type lateGrant struct {
	at, tick     int64
	holder       string
	token        uint64
	expires, ttl int64
}

// running reports whether the late grant's run lease is live at leader
// time now.
func (l *lateGrant) running(now int64) bool { return l.expires != 0 && now < l.expires }

// busy is the refusal of a claim that this late grant's live run lease
// holds off: it names the late grant, so its holder can tell its own
// lease from another node's.
func (l *lateGrant) busy() Outcome { return Outcome{Reason: ReasonBusy, Holder: l.holder, At: l.at} }

// newJobRecord is the record of a job's first grant: no grant came
// before it, so every earlier instant is known never to have been granted.
func newJobRecord() grantRecord { return grantRecord{known: true, floor: math.MinInt64} }

// pushed returns the record after a new latest grant, lastAt being the
// instant of the grant it replaces as the latest. The oldest kept grant
// falls out when the list is full and becomes the floor. A record that
// knew nothing starts knowing from lastAt on: until now it had no late
// grant, so every grant was made in instant order and none came between
// lastAt and the new grant.
func (r grantRecord) pushed(lastAt int64) grantRecord {
	if !r.known {
		r = grantRecord{known: true, floor: lastAt}
	}
	return r.inserted(lastAt)
}

// inserted returns the record with one more grant kept, at instant at,
// which the record must not hold yet and which must not be below its
// floor.
// When the list is full, the oldest of it and at falls out and becomes the
// floor.
func (r grantRecord) inserted(at int64) grantRecord {
	i := 0
	for i < int(r.n) && r.prev[i] > at {
		i++
	}
	if r.n == grantsKept {
		if i == grantsKept {
			r.floor = at
			return r
		}
		r.floor = r.prev[grantsKept-1]
		r.n--
	}
	copy(r.prev[i+1:r.n+1], r.prev[i:r.n])
	r.prev[i] = at
	r.n++
	return r
}

// withoutStaleLate returns the record without its late grant once nothing
// needs it: its run lease is over and the record no longer knows its
// instant, so no claim could be granted in its place anyway.
func (r grantRecord) withoutStaleLate(now int64) grantRecord {
	if r.late.token != 0 && r.late.at <= r.floor && !r.late.running(now) {
		r.late = lateGrant{}
	}
	return r
}

// Granted reports whether the job's instant at was granted, as far as the
// state machine's record reaches: granted is true if at is the latest
// grant or one of the few before it that the state keeps, and known is
// false when at is too old for the record to say (it may have run). An
// instant after the latest grant is known not granted yet. It reads only
// the copy it is called on, so it is safe for concurrent use.
func (s JobState) Granted(at int64) (granted, known bool) {
	switch {
	case at == s.LastAt:
		return true, true
	case at > s.LastAt:
		return false, true
	}
	for _, p := range s.record.prev[:s.record.n] {
		if p == at {
			return true, true
		}
	}
	return false, s.record.known && at > s.record.floor
}

// GrantOf returns the holder and fencing token of the grant of instant at,
// if the state still holds them: the latest grant's, or the latest late
// grant's (one made after a later instant of the job). ok is false for any
// other instant, granted or not. It reads only the copy it is called on,
// so it is safe for concurrent use.
func (s JobState) GrantOf(at int64) (holder string, token uint64, ok bool) {
	switch l := &s.record.late; {
	case at == s.LastAt:
		return s.Holder, s.Token, s.Holder != ""
	case l.token != 0 && at == l.at:
		return l.holder, l.token, true
	}
	return "", 0, false
}

// encodeGrantRecords writes the grant record of every job, in the order of
// names, the jobs section's order, so a record needs no name of its own.
// Instants are written as distances back from the job's latest grant,
// which are small and never negative. A record's first number is 0 when
// it knows nothing, else 1 plus its count of grants kept; a known record
// ends with its late grant, if it keeps one.
func encodeGrantRecords(e *encoder, names []string, jobs map[string]*JobState) {
	e.uvarint(uint64(len(names)))
	for _, name := range names {
		st := jobs[name]
		r := &st.record
		if !r.known {
			e.uvarint(0)
			continue
		}
		e.uvarint(uint64(r.n) + 1)
		for _, p := range r.prev[:r.n] {
			e.uvarint(uint64(st.LastAt - p))
		}
		complete := r.floor == math.MinInt64
		e.bool(complete)
		if !complete {
			e.uvarint(uint64(st.LastAt - r.floor))
		}
		l := &r.late
		e.bool(l.token != 0)
		if l.token != 0 {
			e.uvarint(uint64(st.LastAt - l.at))
			e.varint(l.tick)
			e.string(l.holder)
			e.uvarint(l.token)
			e.varint(l.expires)
			e.varint(l.ttl)
		}
	}
}

// decodeGrantRecords reverses encodeGrantRecords into the jobs decoded in
// the order of names. A record that does not fit its job fails the decoder.
func decodeGrantRecords(d *decoder, names []string, jobs map[string]*JobState) {
	if n := d.count(1); d.err == nil && n != len(names) {
		d.fail("grant records")
		return
	}
	for _, name := range names {
		st := jobs[name]
		n := d.uvarint()
		if n == 0 || d.err != nil {
			continue
		}
		if n > grantsKept+1 {
			d.fail("grant record")
			return
		}
		r := grantRecord{known: true, n: uint8(n - 1), floor: math.MinInt64}
		for i := range r.prev[:r.n] {
			r.prev[i] = st.LastAt - int64(d.uvarint())
		}
		if !d.bool() {
			r.floor = st.LastAt - int64(d.uvarint())
		}
		if d.bool() {
			r.late = lateGrant{at: st.LastAt - int64(d.uvarint()), tick: d.varint(), holder: d.string(), token: d.uvarint(), expires: d.varint(), ttl: d.varint()}
			if r.late.token == 0 && d.err == nil {
				d.fail("late grant")
			}
		}
		if d.err != nil {
			return
		}
		st.record = r
	}
}
