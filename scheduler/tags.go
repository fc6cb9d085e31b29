package scheduler

import "github.com/interlockraft/interlock/internal/seam"

// eligible reports whether this node may run j: every pair of
// j.RequireTags is among the node's tags. Without a cluster every job is
// eligible. The state machine does not check tags (gossip metadata is not
// in the log), so this filter is the whole of node targeting: a node that
// does not match never registers the job, so peers never rank it, and
// never claims it.
func (s *Scheduler) eligible(j Job) bool {
	if len(j.RequireTags) == 0 || s.coord == nil {
		return true
	}
	t, ok := s.coord.(seam.Tagger)
	if !ok {
		return false
	}
	tags := t.Tags()
	for k, v := range j.RequireTags {
		if got, ok := tags[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// eligibleNames returns the names of the jobs in names that this node may
// run; names of jobs no longer added are kept, as registering them is
// harmless. The caller must not hold s.mu.
func (s *Scheduler) eligibleNames(names []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(names))
	for _, name := range names {
		if js, ok := s.jobs[name]; ok && !s.eligible(js.job) {
			continue
		}
		out = append(out, name)
	}
	return out
}
