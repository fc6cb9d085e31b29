package fsm

import "time"

// collectEvery is how much leader time passes between two sweeps of the
// jobs map. A sweep visits every job, so it runs at most once per this much
// leader time, in the entry whose time first reaches a new multiple of it.
const collectEvery = time.Minute

// advanceClockLocked records an entry's leader time. f.clock only ever
// grows, so it is the latest leader time any replica has applied, even
// when a new leader's wall clock lags its predecessor's. When it reaches a
// new multiple of collectEvery, the jobs map is swept in this same entry.
// Every replica applies the same entries with the same times, so every
// replica sweeps at the same entry and drops the same jobs.
func (f *FSM) advanceClockLocked(now int64) {
	if now <= f.clock {
		return
	}
	prev := f.clock
	f.clock = now
	if now/int64(collectEvery) != prev/int64(collectEvery) {
		f.collectJobsLocked()
	}
}

// collectJobsLocked forgets every job that no node registers, whose latest
// instant is more than MaxStartDeadline older than f.clock, and whose run
// lease is not live, with its history, and run-now requests whose window
// passed. It drops every job that qualifies, so the result does
// not depend on the map's iteration order.
//
// Why forgetting is safe: the state of a job matters only to refuse
// instants at or before LastAt. Every such instant is older than
// f.clock - MaxStartDeadline, and f.clock never decreases, so grant refuses
// each of them as expired from now on, state or no state. A later instant
// is granted exactly as if the state were still there (it is after LastAt,
// and a lease that is not live never blocks a grant). The next grant's
// token is a later entry's index, so fencing tokens keep increasing. A
// registered job is kept because its nodes rank candidates and fall back on
// its state; a job with a live run lease is kept so that SkipIfRunning
// still sees the run.
func (f *FSM) collectJobsLocked() {
	horizon := f.clock - int64(MaxStartDeadline)
	for name, st := range f.jobs {
		if st.LastAt >= horizon || st.Running(f.clock) || len(f.nodesByJob[name]) > 0 {
			continue
		}
		delete(f.jobs, name)
		delete(f.history, name)
	}
	f.collectRunNowLocked()
}
