package scheduler_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/scheduler"
)

// TestMetricsLocalSchedulersShareARegistry runs two local Schedulers
// registered with one registry: their jobs' series appear side by side,
// each run is counted once under its result, and local runs report no
// claims.
func TestMetricsLocalSchedulersShareARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	quiet := hclog.NewNullLogger()
	a := scheduler.New(scheduler.Options{Registerer: reg, Logger: quiet})
	b := scheduler.New(scheduler.Options{Registerer: reg, Logger: quiet})
	jobs := []struct {
		s      *scheduler.Scheduler
		name   string
		result string
		fn     scheduler.Func
	}{
		{a, "ok", "success", func(context.Context, scheduler.Run) error { return nil }},
		{a, "fails", "error", func(context.Context, scheduler.Run) error { return errors.New("boom") }},
		{b, "panics", "panic", func(context.Context, scheduler.Run) error { panic("boom") }},
	}
	for _, j := range jobs {
		if err := j.s.Add(scheduler.Job{Name: j.name, Interval: 20 * time.Millisecond, Func: j.fn}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	for _, s := range []*scheduler.Scheduler{a, b} {
		go func() { done <- s.Run(ctx) }()
	}
	clustertest.Eventually(t, 10*time.Second, func() bool {
		return a.Stats()["ok"].Runs >= 3 && a.Stats()["fails"].Runs >= 3 && b.Stats()["panics"].Runs >= 3
	}, "every job ran 3 times")
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}

	mfs := scrape(t, reg)
	for _, j := range jobs {
		want := float64(j.s.Stats()[j.name].Runs)
		if got := mustValue(t, "local", mfs, "interlock_job_runs_total", "job", j.name, "result", j.result); got != want {
			t.Errorf("interlock_job_runs_total{job=%q,result=%q} = %v, Stats says %v runs", j.name, j.result, got, want)
		}
		if got := mustValue(t, "local", mfs, "interlock_job_run_duration_seconds", "job", j.name); got != want {
			t.Errorf("interlock_job_run_duration_seconds{job=%q} has %v observations, want %v", j.name, got, want)
		}
		if _, ok := value(mfs, "interlock_job_claims_total", "job", j.name); ok {
			t.Errorf("a local scheduler reports claims for %q", j.name)
		}
		if got := mustValue(t, "local", mfs, "interlock_job_running", "job", j.name); got != 0 {
			t.Errorf("interlock_job_running{job=%q} = %v after Run returned, want 0", j.name, got)
		}
	}
	lintInterlockMin(t, "local", mfs, 6)
}
