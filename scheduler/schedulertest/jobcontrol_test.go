package schedulertest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/scheduler"
	"github.com/interlockraft/interlock/scheduler/schedulertest"
)

// A paused job gets no grants until resumed; the fake refuses its claims
// as a real cluster does.
func TestPauseAndResume(t *testing.T) {
	c := schedulertest.NewCluster("node-a", schedulertest.WithLogger(hclog.NewNullLogger()))
	var r runs
	s := scheduler.New(scheduler.Options{Cluster: c})
	if err := s.Add(scheduler.Job{Name: "j", Interval: 20 * time.Millisecond, Func: r.record}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Pause(ctx, "j"); err != nil {
		t.Fatal(err)
	}
	if st := s.Jobs(); len(st) != 1 || !st[0].Paused {
		t.Fatalf("Jobs() after Pause = %+v, want j paused", st)
	}
	start(t, s)
	// Wait until the scheduler has moved two ticks past the first one it
	// queued, so it claimed that first tick while the job was paused.
	var first time.Time
	eventually(t, func() bool { first = s.Jobs()[0].Next; return !first.IsZero() }, "no tick queued")
	eventually(t, func() bool { return s.Jobs()[0].Next.After(first.Add(40 * time.Millisecond)) }, "the scheduler did not move on")
	for _, g := range c.Grants() {
		if !g.At.After(first) {
			t.Fatalf("a tick at %s was granted while the job was paused: %+v", first, g)
		}
	}
	if err := s.Resume(ctx, "j"); err != nil {
		t.Fatal(err)
	}
	for _, g := range waitGrants(t, c, 2) {
		if !g.At.After(first) {
			t.Errorf("the tick at %s, claimed while paused, was granted: %+v", first, g)
		}
	}
}

// RunNow runs the job once, off schedule, with a negative tick; History
// lists it with its error.
func TestRunNowAndHistory(t *testing.T) {
	c := schedulertest.NewCluster("node-a", schedulertest.WithLogger(hclog.NewNullLogger()))
	boom := errors.New("boom")
	var r runs
	s := scheduler.New(scheduler.Options{Cluster: c})
	err := s.Add(scheduler.Job{Name: "j", Interval: time.Hour, Func: func(ctx context.Context, run scheduler.Run) error {
		_ = r.record(ctx, run)
		return boom
	}})
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	eventually(t, func() bool { return s.RunNow(context.Background(), "j") == nil }, "RunNow never accepted (job not registered?)")
	grants := waitGrants(t, c, 1)
	eventually(t, func() bool { return len(s.History("j")) == 1 }, "the run never reached the history")
	h := s.History("j")[0]
	runs := r.snapshot()
	if len(runs) != 1 || runs[0].Tick >= 0 || runs[0].Token != grants[0].Token {
		t.Fatalf("runs = %+v, want one with a negative tick and token %d", runs, grants[0].Token)
	}
	if h.Node != "node-a" || h.Token != grants[0].Token || h.Result != scheduler.ResultError || h.Error != boom.Error() || h.Start.IsZero() {
		t.Errorf("history entry = %+v, want node-a's failed run with token %d", h, grants[0].Token)
	}
	if err := s.RunNow(context.Background(), "unknown"); !errors.Is(err, scheduler.ErrUnknownJob) {
		t.Errorf("RunNow(unknown) = %v, want ErrUnknownJob", err)
	}
}

// A job whose RequireTags the node lacks never runs there.
func TestRequireTags(t *testing.T) {
	c := schedulertest.NewCluster("node-a", schedulertest.WithLogger(hclog.NewNullLogger()), schedulertest.WithTags(map[string]string{"zone": "a"}))
	var here, there runs
	s := scheduler.New(scheduler.Options{Cluster: c})
	if err := s.Add(scheduler.Job{Name: "b-only", Interval: 10 * time.Millisecond, RequireTags: map[string]string{"zone": "b"}, Func: there.record}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(scheduler.Job{Name: "a-only", Interval: 10 * time.Millisecond, RequireTags: map[string]string{"zone": "a"}, Func: here.record}); err != nil {
		t.Fatal(err)
	}
	start(t, s)
	eventually(t, func() bool { return len(here.snapshot()) >= 5 }, "the matching job did not run")
	if n := len(there.snapshot()); n != 0 {
		t.Fatalf("job requiring zone=b ran %d times on a zone=a node", n)
	}
	for _, st := range s.Jobs() {
		if want := st.Name == "a-only"; st.Eligible != want {
			t.Errorf("Jobs()[%s].Eligible = %v, want %v", st.Name, st.Eligible, want)
		}
	}
}

// Without a cluster, the replicated operations say so.
func TestJobControlNeedsACluster(t *testing.T) {
	s := scheduler.New(scheduler.Options{Logger: hclog.NewNullLogger()})
	for name, err := range map[string]error{
		"Pause":  s.Pause(context.Background(), "j"),
		"Resume": s.Resume(context.Background(), "j"),
		"RunNow": s.RunNow(context.Background(), "j"),
	} {
		if !errors.Is(err, scheduler.ErrNoCluster) {
			t.Errorf("%s without a cluster = %v, want ErrNoCluster", name, err)
		}
	}
	if h := s.History("j"); h != nil {
		t.Errorf("History without a cluster = %+v, want nil", h)
	}
}
