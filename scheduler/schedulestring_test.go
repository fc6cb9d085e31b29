package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/interlockraft/interlock/scheduler"
)

// weekdays is a Schedule of the application's own type, without String.
type weekdays struct{}

func (weekdays) Next(after time.Time) time.Time { return after.Add(24 * time.Hour) }

// TestJobStatusSchedule checks that Jobs describes each kind of schedule
// as it is, not as an interval.
func TestJobStatusSchedule(t *testing.T) {
	cron, err := scheduler.Cron("CRON_TZ=Europe/Berlin 0 3 * * *")
	if err != nil {
		t.Fatal(err)
	}
	every90, err := scheduler.Cron("@every 90s")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		job  scheduler.Job
		want string
	}{
		{scheduler.Job{Name: "interval", Interval: time.Minute}, "every 1m0s"},
		{scheduler.Job{Name: "every", Schedule: scheduler.Every(time.Hour)}, "every 1h0m0s"},
		{scheduler.Job{Name: "offset", Schedule: scheduler.Every(24 * time.Hour).Offset(3 * time.Hour)}, "every 24h0m0s offset 3h0m0s"},
		{scheduler.Job{Name: "cron", Schedule: cron}, "cron CRON_TZ=Europe/Berlin 0 3 * * *"},
		{scheduler.Job{Name: "cron-every", Schedule: every90}, "every 1m30s"},
		{scheduler.Job{Name: "once", Schedule: scheduler.At(at)}, "at 2030-01-02T03:04:05Z"},
		{scheduler.Job{Name: "custom", Schedule: weekdays{}}, "scheduler_test.weekdays"},
	}
	s := scheduler.New(scheduler.Options{})
	for _, c := range cases {
		c.job.Func = func(context.Context, scheduler.Run) error { return nil }
		if err := s.Add(c.job); err != nil {
			t.Fatalf("add %s: %v", c.job.Name, err)
		}
	}
	got := make(map[string]string)
	for _, st := range s.Jobs() {
		got[st.Name] = st.Schedule
	}
	for _, c := range cases {
		if got[c.job.Name] != c.want {
			t.Errorf("job %s: Schedule %q, want %q", c.job.Name, got[c.job.Name], c.want)
		}
	}
}
