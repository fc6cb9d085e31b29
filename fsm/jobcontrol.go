package fsm

import (
	"maps"
	"slices"
	"time"
)

const (
	// CommandPause pauses or resumes a job cluster-wide.
	CommandPause CommandType = 10
	// CommandRunNow asks for one extra run of a job, now.
	CommandRunNow CommandType = 11
)

// RunNowWindow is how long a run-now request stays pending: a node that
// has not been granted it within this much leader time after the request
// gets it refused as expired, and the request is then forgotten. Nodes
// claim a request at once, so only a job that is busy or paused for this
// long, or that no live node runs, loses one.
const RunNowWindow = time.Minute

// Pause pauses a job (Paused true) or resumes it. While a job is paused
// the state machine refuses every claim of it with ReasonPaused, on every
// node, until a Pause with Paused false. A run already going is not
// stopped.
type Pause struct {
	Job    string
	Paused bool
}

// EncodePause encodes a pause or resume as a log entry.
func EncodePause(p Pause) []byte {
	e := newEncoder(CommandPause, len(p.Job)+2)
	e.string(p.Job)
	e.bool(p.Paused)
	return e.buf
}

func decodePause(d *decoder) (Pause, error) {
	p := Pause{Job: d.string(), Paused: d.bool()}
	return p, d.err
}

// RunNowRequest is a pending request for one extra run of a job. Its
// instant At is a tick of the job like any other: the nodes that run the
// job rank themselves for it by rendezvous and claim it with an ordinary
// Claim whose At is this At, so it is granted at most once and gets its
// own fencing token. At is strictly after the job's latest granted
// instant when requested, so it never names a tick that already ran.
type RunNowRequest struct {
	// ID is the Raft index of the request's entry. Nodes use its negation
	// as the claim's Tick, which names the run in run lease updates and
	// never equals a scheduled tick's index (those are positive).
	ID uint64
	// At is the run's instant, in Unix nanoseconds: the leader time of
	// the request, or one nanosecond after the job's latest granted
	// instant if that is later.
	At int64
}

// Deadline is the latest leader time at which the request may be granted.
func (r RunNowRequest) Deadline() int64 { return r.At + int64(RunNowWindow) }

// RunNowResult answers a CommandRunNow.
type RunNowResult struct {
	// Request is the pending request: the new one, or the one already
	// pending for the job, which the new request joins. Zero if refused.
	Request RunNowRequest
	// Refused is ReasonGranted (zero) when the request was recorded or
	// joined, and otherwise says why not: ReasonPaused for a paused job,
	// ReasonInvalid for an empty name or a job no node registered.
	Refused Reason
}

// EncodeRunNow encodes a run-now request for job as a log entry.
func EncodeRunNow(job string) []byte {
	e := newEncoder(CommandRunNow, len(job)+1)
	e.string(job)
	return e.buf
}

func decodeRunNow(d *decoder) (string, error) {
	job := d.string()
	return job, d.err
}

// EncodeRunNowResult encodes a run-now result for the trip back to the
// follower that forwarded the request.
func EncodeRunNowResult(r *RunNowResult) []byte {
	e := &encoder{}
	e.uvarint(r.Request.ID)
	e.varint(r.Request.At)
	e.byte(byte(r.Refused))
	return e.buf
}

// DecodeRunNowResult reverses EncodeRunNowResult.
func DecodeRunNowResult(b []byte) (*RunNowResult, error) {
	d := &decoder{buf: b}
	r := &RunNowResult{Request: RunNowRequest{ID: d.uvarint(), At: d.varint()}}
	r.Refused = Reason(d.byte())
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}

func (f *FSM) applyPause(p Pause) {
	if p.Job == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, was := f.paused[p.Job]; was == p.Paused {
		return
	}
	// Copy on write: Paused reads the published map without the lock.
	paused := maps.Clone(f.paused)
	if p.Paused {
		paused[p.Job] = struct{}{}
	} else {
		delete(paused, p.Job)
	}
	f.setPausedLocked(paused)
}

// setPausedLocked makes paused the set of paused jobs. The map must not
// change afterwards: Paused reads it without the lock.
func (f *FSM) setPausedLocked(paused map[string]struct{}) {
	f.paused = paused
	f.pausedView.Store(&paused)
}

// applyRunNow records a run-now request, or joins the one pending. A
// request for a job no node registered is refused: no node would claim it.
func (f *FSM) applyRunNow(index uint64, now int64, job string) *RunNowResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case job == "" || len(f.nodesByJob[job]) == 0:
		return &RunNowResult{Refused: ReasonInvalid}
	case f.isPausedLocked(job):
		return &RunNowResult{Refused: ReasonPaused}
	}
	if r, ok := f.runNow[job]; ok && now <= r.Deadline() {
		return &RunNowResult{Request: r}
	}
	at := now
	if st := f.jobs[job]; st != nil && st.LastAt >= at {
		at = st.LastAt + 1
	}
	r := RunNowRequest{ID: index, At: at}
	f.runNow[job] = r
	f.wakeRunNowLocked()
	return &RunNowResult{Request: r}
}

func (f *FSM) isPausedLocked(job string) bool {
	_, ok := f.paused[job]
	return ok
}

// settleRunNowLocked forgets a job's run-now request once a grant reached
// its instant: that grant ran it, or a later tick stands in for it.
func (f *FSM) settleRunNowLocked(job string, grantedAt int64) {
	if r, ok := f.runNow[job]; ok && grantedAt >= r.At {
		delete(f.runNow, job)
	}
}

// collectRunNowLocked forgets requests whose window has passed.
func (f *FSM) collectRunNowLocked() {
	for job, r := range f.runNow {
		if f.clock > r.Deadline() {
			delete(f.runNow, job)
		}
	}
}

// Paused reports whether a job is paused. It takes no lock, because the
// scheduler asks for every tick of every job: it reads the set of paused
// jobs that the last pause, resume or restore published.
func (f *FSM) Paused(job string) bool {
	m := f.pausedView.Load()
	if m == nil {
		return false
	}
	_, ok := (*m)[job]
	return ok
}

// PausedJobs returns the names of every paused job, in no order.
func (f *FSM) PausedJobs() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]string, 0, len(f.paused))
	for job := range f.paused {
		out = append(out, job)
	}
	return out
}

// RunNowRequests returns a copy of every pending run-now request, by job.
// The map is small: a request is pending for at most RunNowWindow.
func (f *FSM) RunNowRequests() map[string]RunNowRequest {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return maps.Clone(f.runNow)
}

// RunNowChanged returns a channel that is closed the next time a run-now
// request is recorded or a restore replaces the pending requests. A caller
// takes the channel before it reads RunNowRequests, so that a request
// recorded in between still wakes it; with nothing pending, it can then
// wait without polling. It is safe for concurrent use.
func (f *FSM) RunNowChanged() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.runNowWake
}

// wakeRunNowLocked wakes every waiter on RunNowChanged. f.mu is held for
// writing.
func (f *FSM) wakeRunNowLocked() {
	close(f.runNowWake)
	f.runNowWake = make(chan struct{})
}

// jobControl is the snapshot's job control section, decoded.
type jobControl struct {
	paused  map[string]struct{}
	runNow  map[string]RunNowRequest
	history map[string][]HistoryEntry
}

func newJobControl() jobControl {
	return jobControl{
		paused:  make(map[string]struct{}),
		runNow:  make(map[string]RunNowRequest),
		history: make(map[string][]HistoryEntry),
	}
}

// encodeJobControlLocked appends the job control section: the paused
// jobs, the pending run-now requests and the histories, each sorted by job
// so that equal states encode to equal bytes. The caller holds f.mu.
func (f *FSM) encodeJobControlLocked(e *encoder) {
	paused := slices.Sorted(maps.Keys(f.paused))
	e.uvarint(uint64(len(paused)))
	for _, job := range paused {
		e.string(job)
	}
	pending := slices.Sorted(maps.Keys(f.runNow))
	e.uvarint(uint64(len(pending)))
	for _, job := range pending {
		r := f.runNow[job]
		e.string(job)
		e.uvarint(r.ID)
		e.varint(r.At)
	}
	jobs := slices.Sorted(maps.Keys(f.history))
	e.uvarint(uint64(len(jobs)))
	for _, job := range jobs {
		e.string(job)
		list := f.history[job]
		e.uvarint(uint64(len(list)))
		for _, h := range list {
			encodeHistoryEntry(e, h)
		}
	}
}

// decodeJobControl reads what encodeJobControlLocked wrote. Errors stick
// in d.
func decodeJobControl(d *decoder) jobControl {
	c := newJobControl()
	n := d.count(1)
	for i := 0; i < n && d.err == nil; i++ {
		c.paused[d.string()] = struct{}{}
	}
	n = d.count(3)
	for i := 0; i < n && d.err == nil; i++ {
		job := d.string()
		c.runNow[job] = RunNowRequest{ID: d.uvarint(), At: d.varint()}
	}
	n = d.count(2)
	for i := 0; i < n && d.err == nil; i++ {
		job := d.string()
		m := d.count(historyEntryMin)
		list := make([]HistoryEntry, 0, m)
		for j := 0; j < m && d.err == nil; j++ {
			list = append(list, decodeHistoryEntry(d))
		}
		c.history[job] = list
	}
	return c
}
