package clustertest

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
)

// MaxGrantsAhead is how many grants of later instants of a job may come
// before a grant of an earlier one: the cluster grants an instant after a
// later one (fsm.CommandClaimAnyOrder) only while the job's record shows
// it never granted, and the record keeps the latest grant and the four
// before it, so every grant above such an instant is one of those five.
const MaxGrantsAhead = 5

// TokenRun is what TokenOrderViolations needs of one run: its job, its
// scheduled instant (or tick index, for one interval), its fencing token,
// and how to name it in a failure.
type TokenRun struct {
	Job   string
	At    int64
	Token uint64
	Name  string
}

// TokenOrderViolations describes every place where a job's fencing tokens
// break what the cluster's grants allow. Tokens are the Raft indexes of the
// granting entries, so they follow the order grants are made: two runs of
// one job never share one, and a run's token is larger than those of runs
// at later instants only when its tick was granted late, after at most
// MaxGrantsAhead of them. When every tick is granted in order, this is the
// old rule: tokens strictly increase with the instant.
func TokenOrderViolations(runs []TokenRun) []string {
	byJob := map[string][]TokenRun{}
	for _, r := range runs {
		byJob[r.Job] = append(byJob[r.Job], r)
	}
	var out []string
	for _, rs := range byJob {
		rs = slices.Clone(rs)
		slices.SortStableFunc(rs, func(a, b TokenRun) int {
			if a.At != b.At {
				return cmp.Compare(a.At, b.At)
			}
			return cmp.Compare(a.Token, b.Token)
		})
		for i, r := range rs {
			var ahead []string
			for _, s := range rs[i+1:] {
				switch {
				case s.At == r.At:
					// Two runs of one instant: a duplicate, reported by
					// the caller's own check.
				case s.Token == r.Token:
					out = append(out, fmt.Sprintf("%s and %s share a token", r.Name, s.Name))
				case s.Token < r.Token:
					ahead = append(ahead, s.Name)
				}
			}
			if len(ahead) > MaxGrantsAhead {
				out = append(out, fmt.Sprintf("%s granted after %d runs of later instants (at most %d can be): %v", r.Name, len(ahead), MaxGrantsAhead, ahead))
			}
		}
	}
	sort.Strings(out)
	return out
}
