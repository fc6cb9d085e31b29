package fsm

import (
	"maps"
	"slices"
)

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
	e := &encoder{}
	encodeGrantRecords(e, slices.Sorted(maps.Keys(f.jobs)), f.jobs)
	return len(e.buf)
}
