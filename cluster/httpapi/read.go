package httpapi

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/scheduler"
)

// recentRuns is how many runs a Job lists in Recent.
const recentRuns = 10

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.statusBody())
}

func (s *server) statusBody() Status {
	st := s.cfg.Node.Status()
	out := Status{
		Node:         st.Node,
		Cluster:      st.Cluster,
		Leader:       st.Leader,
		Role:         st.Role,
		Term:         st.Term,
		CommitIndex:  st.CommitIndex,
		AppliedIndex: st.AppliedIndex,
		LastIndex:    st.LastIndex,
		Ready:        true,
		Members:      make([]Member, 0, len(st.Members)),
	}
	if err := s.cfg.Node.Ready(); err != nil {
		out.Ready, out.NotReady = false, err.Error()
	}
	for _, m := range st.Members {
		mm := Member{Name: m.Name, GossipAddr: m.GossipAddr, RaftAddr: m.RaftAddr, Role: m.Role, Tags: m.Tags}
		if m.InGossip {
			mm.Gossip = m.Gossip.String()
		}
		if h := m.Health; h != nil {
			healthy := h.Healthy
			mm.Healthy = &healthy
			if h.LastContact >= 0 {
				secs := h.LastContact.Seconds()
				mm.LastContactSeconds = &secs
			}
		}
		out.Members = append(out.Members, mm)
	}
	return out
}

func (s *server) jobs(w http.ResponseWriter, r *http.Request) {
	out := []Job{}
	seen := make(map[string]bool)
	for _, sch := range s.cfg.Schedulers {
		for _, st := range sch.Jobs() {
			if seen[st.Name] {
				continue
			}
			seen[st.Name] = true
			out = append(out, jobBody(sch, st))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
}

func jobBody(sch *scheduler.Scheduler, st scheduler.JobStatus) Job {
	j := Job{
		Name:     st.Name,
		Schedule: st.Schedule,
		Next:     timePtr(st.Next),
		LastAt:   timePtr(st.LastAt),
		Owner:    st.Owner,
		Token:    st.Token,
		Paused:   st.Paused,
		Eligible: st.Eligible,
	}
	if st.LastRun != nil {
		run := runBody(*st.LastRun)
		j.LastRun = &run
	}
	runs := newestFirst(sch.History(st.Name))
	j.Recent = runs[:min(len(runs), recentRuns)]
	return j
}

func (s *server) history(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	sch, ok := s.findJob(w, name)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, newestFirst(sch.History(name)))
}

// findJob returns the Scheduler that has the job, or answers 404 saying
// which jobs there are.
func (s *server) findJob(w http.ResponseWriter, name string) (*scheduler.Scheduler, bool) {
	var names []string
	for _, sch := range s.cfg.Schedulers {
		for _, st := range sch.Jobs() {
			if st.Name == name {
				return sch, true
			}
			names = append(names, st.Name)
		}
	}
	node := s.cfg.Node.Name()
	switch {
	case len(s.cfg.Schedulers) == 0:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no job %q: node %s serves no Scheduler; pass them in httpapi.Config.Schedulers", name, node))
	case len(names) == 0:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no job %q: node %s has no jobs", name, node))
	default:
		sort.Strings(names)
		writeError(w, http.StatusNotFound, fmt.Sprintf("no job %q on node %s; its jobs are %s", name, node, strings.Join(names, ", ")))
	}
	return nil, false
}

// newestFirst converts a history, which the scheduler keeps oldest first.
func newestFirst(list []scheduler.HistoryEntry) []Run {
	out := make([]Run, len(list))
	for i, h := range list {
		out[len(list)-1-i] = runBody(h)
	}
	return out
}

func runBody(h scheduler.HistoryEntry) Run {
	return Run{
		Node:            h.Node,
		Token:           h.Token,
		Tick:            h.Tick,
		At:              h.At.UTC(),
		Start:           h.Start.UTC(),
		DurationSeconds: h.Duration.Seconds(),
		Result:          h.Result.String(),
		Error:           h.Error,
	}
}

func (s *server) locks(w http.ResponseWriter, r *http.Request) {
	list := s.cfg.Node.Locks()
	out := make([]Lock, 0, len(list))
	for _, l := range list {
		out = append(out, lockBody(l))
	}
	writeJSON(w, http.StatusOK, out)
}

func lockBody(l cluster.LockInfo) Lock {
	return Lock{Name: l.Name, Holder: l.Node, Owner: l.Owner, Token: l.Token, Expires: timePtr(l.Expires), Waiters: l.Waiters}
}

// healthz says the process serves HTTP; it checks nothing else, so a
// liveness probe does not restart a node that is only waiting for quorum.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "node": s.cfg.Node.Name()})
}

// readyz answers 200 while Node.Ready does, and 503 with its reason.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Node.Ready(); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "node": s.cfg.Node.Name()})
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
