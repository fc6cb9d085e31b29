package fsm

import "slices"

// LockMemory reports how many records the lock state keeps besides the
// locks themselves: incarnations, remembered release calls, and finished
// owners of the older form. Tests use it to check that they stay bounded.
func (f *FSM) LockMemory() (incarnations, releases, legacy int) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, r := range f.incarnations {
		releases += len(r.releases)
	}
	return len(f.incarnations), releases, len(f.finished) + len(f.finishedOrder)
}

// WithoutRecord returns s without its record of earlier grants, so tests
// can compare a job's latest grant with a literal.
func WithoutRecord(s JobState) JobState {
	s.record = grantRecord{}
	return s
}

// GrantRecordsLen returns how many bytes the grant records take at the end
// of a snapshot of f, so tests can cut them off to get the form a build
// from before them wrote.
func GrantRecordsLen(f *FSM) int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	names := make([]string, 0, len(f.jobs))
	for name := range f.jobs {
		names = append(names, name)
	}
	slices.Sort(names)
	e := &encoder{}
	encodeGrantRecords(e, names, f.jobs)
	return len(e.buf)
}
