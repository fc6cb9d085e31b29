package scheduler

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/interlockraft/interlock/fsm"
	"github.com/interlockraft/interlock/internal/seam"
)

// JobStatus is what the cluster and this node know about one job, for
// status pages: see Scheduler.Jobs.
type JobStatus struct {
	// Name is the job's name.
	Name string
	// Schedule describes when the job's ticks fall: "every 1m0s", "every
	// 24h0m0s offset 3h0m0s", "cron 0 3 * * *" or "at <RFC 3339 time>".
	Schedule string
	// Next is the next tick this node has queued; zero while Run is not
	// running, or if this node does not run the job (RequireTags).
	Next time.Time
	// LastAt is the scheduled instant of the job's latest grant,
	// cluster-wide; zero if none is known. Owner is the node it was
	// granted to and Token its fencing token.
	LastAt time.Time
	Owner  string
	Token  uint64
	// LastRun is the job's latest finished run in the replicated history,
	// nil if none is recorded.
	LastRun *HistoryEntry
	// Paused is whether the job is paused cluster-wide.
	Paused bool
	// Eligible is whether this node's tags satisfy the job's RequireTags,
	// so that it registers and claims the job.
	Eligible bool
}

// Result says how a finished run ended.
type Result uint8

const (
	// ResultSuccess means the job returned nil.
	ResultSuccess = Result(fsm.ResultSuccess)
	// ResultError means the job returned an error.
	ResultError = Result(fsm.ResultError)
	// ResultPanic means the job panicked and the scheduler recovered it.
	ResultPanic = Result(fsm.ResultPanic)
)

// String returns the result's name: "success", "error" or "panic".
func (r Result) String() string { return fsm.RunResult(r).String() }

// HistoryEntry is one finished run of a job, as the node that ran it
// reported it to the cluster.
type HistoryEntry struct {
	// Node ran it, with fencing token Token, for the tick Tick whose
	// scheduled instant is At (see Run).
	Node  string
	Token uint64
	Tick  int64
	At    time.Time
	// Start is when the run started by Node's clock, Duration how long it
	// took.
	Start    time.Time
	Duration time.Duration
	Result   Result
	// Error is the error's text, cut to at most 256 bytes; "" on success.
	Error string
}

func historyEntry(h fsm.HistoryEntry) HistoryEntry {
	return HistoryEntry{
		Node:     h.Node,
		Token:    h.Token,
		Tick:     h.Tick,
		At:       time.Unix(0, h.At),
		Start:    time.Unix(0, h.Start),
		Duration: time.Duration(h.Duration),
		Result:   Result(h.Result),
		Error:    h.Error,
	}
}

// controller returns the coordinator's replicated job state, or an error
// saying why there is none.
func (s *Scheduler) controller(op string) (seam.Controller, error) {
	if s.err != nil {
		return nil, s.err
	}
	ctl, ok := s.coord.(seam.Controller)
	if !ok {
		return nil, fmt.Errorf("%w: %s acts on the cluster's replicated job state; set Options.Cluster", ErrNoCluster, op)
	}
	return ctl, nil
}

// Pause stops a job cluster-wide without removing it: from the moment the
// cluster commits the pause, no node is granted a tick of it, until
// Resume. A run already going is not stopped, and a tick granted before
// the pause still runs: ticks are claimed slightly ahead of their instant,
// so that run can start up to a quarter of the job's StartDeadline, and at
// most a second, after Pause returns. The pause is replicated, so a node
// that restarts, or joins later, sees it too. The job need not be
// added to this Scheduler: any node may pause any job by name. Pausing a
// paused job does nothing. Safe for concurrent use.
func (s *Scheduler) Pause(ctx context.Context, job string) error {
	return s.setPaused(ctx, job, true)
}

// Resume undoes Pause: the job's next tick after the cluster commits the
// resume runs as usual (ticks that fell while paused are not caught up).
// Resuming a job that is not paused does nothing. Safe for concurrent use.
func (s *Scheduler) Resume(ctx context.Context, job string) error {
	return s.setPaused(ctx, job, false)
}

func (s *Scheduler) setPaused(ctx context.Context, job string, paused bool) error {
	op := "Resume"
	if paused {
		op = "Pause"
	}
	ctl, err := s.controller(op)
	if err != nil {
		return err
	}
	if job == "" {
		return fmt.Errorf("%w: %s needs a job name", ErrInvalidJob, op)
	}
	if err := ctl.SetPaused(ctx, job, paused); err != nil {
		return fmt.Errorf("scheduler: %s %q: %w", op, job, err)
	}
	return nil
}

// RunNow asks the cluster for one extra run of a job, now, in addition to
// its schedule. It returns once the request is committed; the run itself
// starts shortly after on one node that registered the job (ranked by
// rendezvous like any tick), through the same grant as a tick, with its
// own fencing token, and its Run.Tick is negative. A request made while
// another is still pending joins it. The request is dropped if it cannot
// be granted within a minute (the job stays busy, or no node runs it),
// and it is absorbed if a scheduled tick after it is granted first.
//
// It returns an error wrapping ErrPaused for a paused job and
// ErrUnknownJob if no node registered the job. Safe for concurrent use.
func (s *Scheduler) RunNow(ctx context.Context, job string) error {
	ctl, err := s.controller("RunNow")
	if err != nil {
		return err
	}
	res, err := ctl.RunNow(ctx, job)
	if err != nil {
		return fmt.Errorf("scheduler: RunNow %q: %w", job, err)
	}
	switch res.Refused {
	case fsm.ReasonPaused:
		return fmt.Errorf("%w: RunNow %q: Resume the job first", ErrPaused, job)
	case fsm.ReasonInvalid:
		return fmt.Errorf("%w: RunNow %q: no node of the cluster registered it; add the job to a running Scheduler first", ErrUnknownJob, job)
	}
	s.logger.Debug("run-now requested", "job", job, "request", res.Request.ID)
	return nil
}

// History returns the job's last finished runs cluster-wide, oldest first:
// at most 20, replicated through the cluster's log, so every node returns
// the same list once it has caught up. Runs without a cluster are not
// recorded; nil then. Safe for concurrent use.
func (s *Scheduler) History(job string) []HistoryEntry {
	ctl, err := s.controller("History")
	if err != nil {
		return nil
	}
	return convertHistory(ctl.History(job))
}

func convertHistory(list []fsm.HistoryEntry) []HistoryEntry {
	if len(list) == 0 {
		return nil
	}
	out := make([]HistoryEntry, len(list))
	for i, h := range list {
		out[i] = historyEntry(h)
	}
	return out
}

// Jobs returns the status of every job added to this Scheduler, sorted by
// name. The cluster-wide fields come from this node's copy of the
// replicated state, which may lag the leader's by a few milliseconds. Safe
// for concurrent use.
func (s *Scheduler) Jobs() []JobStatus {
	s.mu.Lock()
	next := make(map[*jobState]time.Time, len(s.jobs))
	for _, ev := range s.queue.all() {
		if ev.fallback {
			continue
		}
		if t, ok := next[ev.js]; !ok || ev.at.Before(t) {
			next[ev.js] = ev.at
		}
	}
	out := make([]JobStatus, 0, len(s.jobs))
	for name, js := range s.jobs {
		out = append(out, JobStatus{Name: name, Schedule: scheduleString(js.job), Next: next[js], Eligible: s.eligible(js.job)})
	}
	s.mu.Unlock()
	ctl, _ := s.coord.(seam.Controller)
	for i := range out {
		st := &out[i]
		if s.coord != nil {
			if g, ok := s.coord.LastGrant(st.Name); ok {
				st.LastAt, st.Owner, st.Token = time.Unix(0, g.LastAt), g.Holder, g.Token
			}
		}
		if ctl != nil {
			st.Paused = ctl.Paused(st.Name)
			if h := ctl.History(st.Name); len(h) > 0 {
				last := historyEntry(h[len(h)-1])
				st.LastRun = &last
			}
		}
	}
	slices.SortFunc(out, func(a, b JobStatus) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// scheduleString describes a job's schedule for JobStatus: "every 1m0s",
// "every 24h0m0s offset 3h0m0s", "cron 0 3 * * *", "at <RFC 3339 time>",
// or for a Schedule of the application's own type its String, else its
// type's name.
func scheduleString(j Job) string {
	switch s := j.Schedule.(type) {
	case nil:
		return "every " + j.Interval.String()
	case cronSchedule:
		return "cron " + s.spec
	case fmt.Stringer:
		return s.String()
	default:
		return fmt.Sprintf("%T", s)
	}
}
