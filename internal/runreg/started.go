package runreg

import "math"

// startedKept is how many instants of a job the registry remembers
// starting. The cluster may grant a job's instant after a later one
// (fsm.CommandClaimAnyOrder), so the highest instant started is not enough
// to refuse a run seen again: the registry keeps the newest few and
// refuses everything at or below the newest one it let go. That never
// refuses a grant the cluster could make: an instant with this many
// started, and so granted, instants above it is below the state machine's
// record (fsm's grantsKept, four, plus the latest grant), which the state
// machine refuses as taken.
const startedKept = 6

// startedRuns is the instants of one job this node started: the newest
// startedKept, newest first, and the floor at or below which every
// instant counts as started.
type startedRuns struct {
	at    [startedKept]int64
	n     int
	floor int64
}

func newStartedRuns() *startedRuns { return &startedRuns{floor: math.MinInt64} }

// add records instant at as started and reports true, or reports false if
// it counts as started already.
func (s *startedRuns) add(at int64) bool {
	if at <= s.floor {
		return false
	}
	i := 0
	for ; i < s.n && s.at[i] >= at; i++ {
		if s.at[i] == at {
			return false
		}
	}
	if s.n == startedKept {
		if i == startedKept {
			// Older than every instant kept: it did not start here, but
			// no grant of it can be new either.
			return false
		}
		s.floor = s.at[startedKept-1]
		s.n--
	}
	copy(s.at[i+1:s.n+1], s.at[i:s.n])
	s.at[i] = at
	s.n++
	return true
}
