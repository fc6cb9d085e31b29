package scheduler_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/interlockraft/interlock/scheduler"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestScheduleNext(t *testing.T) {
	mustCron := func(spec string) scheduler.Schedule {
		s, err := scheduler.Cron(spec)
		if err != nil {
			t.Fatalf("Cron(%q): %v", spec, err)
		}
		return s
	}
	tests := []struct {
		name  string
		sched scheduler.Schedule
		after string
		want  []string // the next instants, in UTC
	}{
		{"every minute", scheduler.Every(time.Minute), "2026-01-01T10:00:30Z", []string{"2026-01-01T10:01:00Z", "2026-01-01T10:02:00Z"}},
		{"every minute, on an instant", scheduler.Every(time.Minute), "2026-01-01T10:01:00Z", []string{"2026-01-01T10:02:00Z"}},
		{"daily at 03:00 UTC", scheduler.Every(24 * time.Hour).Offset(3 * time.Hour), "2026-01-01T05:00:00Z", []string{"2026-01-02T03:00:00Z", "2026-01-03T03:00:00Z"}},
		{"daily at 03:00 UTC, before it", scheduler.Every(24 * time.Hour).Offset(3 * time.Hour), "2026-01-01T02:59:59Z", []string{"2026-01-01T03:00:00Z"}},
		{"seconds field", mustCron("*/15 * * * * *"), "2026-01-01T10:00:01Z", []string{"2026-01-01T10:00:15Z", "2026-01-01T10:00:30Z"}},
		{"five fields are read in UTC", mustCron("30 9 * * *"), "2026-01-01T10:00:00Z", []string{"2026-01-02T09:30:00Z"}},
		{"CRON_TZ", mustCron("CRON_TZ=Europe/Berlin 0 3 * * *"), "2026-01-01T00:00:00Z", []string{"2026-01-01T02:00:00Z", "2026-01-02T02:00:00Z"}},
		{"TZ", mustCron("TZ=America/New_York 0 9 * * 1-5"), "2026-01-02T00:00:00Z", []string{"2026-01-02T14:00:00Z", "2026-01-05T14:00:00Z"}},
		{"@hourly", mustCron("@hourly"), "2026-01-01T10:20:00Z", []string{"2026-01-01T11:00:00Z", "2026-01-01T12:00:00Z"}},
		{"@daily", mustCron("@daily"), "2026-01-01T10:20:00Z", []string{"2026-01-02T00:00:00Z"}},
		// Epoch-aligned, unlike robfig/cron's @every: 90s divides the
		// epoch's minutes into 00:00, 01:30, 03:00...
		{"@every 90s", mustCron("@every 90s"), "2026-01-01T10:00:10Z", []string{"2026-01-01T10:01:30Z", "2026-01-01T10:03:00Z"}},
		{"At, before", scheduler.At(mustTime(t, "2026-05-01T12:00:00Z")), "2026-01-01T00:00:00Z", []string{"2026-05-01T12:00:00Z", ""}},
		{"At, after", scheduler.At(mustTime(t, "2026-05-01T12:00:00Z")), "2026-05-01T12:00:00Z", []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := mustTime(t, tt.after)
			for i, w := range tt.want {
				got := tt.sched.Next(at)
				if w == "" {
					if !got.IsZero() {
						t.Fatalf("Next #%d = %s; want the zero time (no more runs)", i, got)
					}
					return
				}
				if !got.Equal(mustTime(t, w)) {
					t.Fatalf("Next #%d after %s = %s; want %s", i, at, got.UTC(), w)
				}
				at = got
			}
		})
	}
}

// TestCronIgnoresLocalZone: a spec without a zone means UTC on every
// replica, not the machine's zone nor the zone of the time given to Next
// (robfig/cron reads it in time.Local, or in that time's zone). time.Local
// itself is not changed here: other goroutines of the test binary read it.
func TestCronIgnoresLocalZone(t *testing.T) {
	after := mustTime(t, "2026-01-01T00:00:00Z").In(time.FixedZone("UTC+5", 5*3600))
	for spec, want := range map[string]string{"0 12 * * *": "2026-01-01T12:00:00Z", "0 0 12 * * *": "2026-01-01T12:00:00Z", "@daily": "2026-01-02T00:00:00Z"} {
		s, err := scheduler.Cron(spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Next(after); !got.Equal(mustTime(t, want)) {
			t.Errorf("Cron(%q).Next(%s) = %s; want %s, in UTC", spec, after, got.UTC(), want)
		}
	}
}

func TestCronErrorsNameTheField(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"61 * * * *", "minute field"},
		{"* 25 * * *", "hour field"},
		{"* * 32 * *", "day of month field"},
		{"* * * 13 *", "month field"},
		{"* * * * 8", "day of week field"},
		{"70 * * * * *", "seconds field"},
		{"* * * * * * *", "7 fields"},
		{"* *", "2 fields"},
		{"", "0 fields"},
		{"@fortnightly", "descriptor"},
		{"@every soon", "descriptor"},
		{"CRON_TZ=Nowhere/Special * * * * *", "time zone"},
		{"TZ=Europe/Berlin 0 3 * * mon-fri-sun", "day of week field"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s, err := scheduler.Cron(tt.spec)
			if err == nil {
				t.Fatalf("Cron(%q) = %v, nil; want an error", tt.spec, s)
			}
			if !errors.Is(err, scheduler.ErrInvalidCron) {
				t.Errorf("error %q does not wrap ErrInvalidCron", err)
			}
			if msg := err.Error(); !strings.Contains(msg, `"`+tt.spec+`"`) || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q; want it to quote the spec and name %q", msg, tt.want)
			}
		})
	}
}

func TestJobScheduleValidation(t *testing.T) {
	noop := func(_ context.Context, _ scheduler.Run) error { return nil }
	tests := []struct {
		name string
		job  scheduler.Job
		want []string // all in the message
	}{
		{"neither", scheduler.Job{Name: "j", Func: noop}, []string{"Interval", "Schedule"}},
		{"both", scheduler.Job{Name: "j", Func: noop, Interval: time.Second, Schedule: scheduler.Every(time.Second)}, []string{"Interval", "Schedule", "only one"}},
		{"zero Every", scheduler.Job{Name: "j", Func: noop, Schedule: scheduler.Every(0)}, []string{"Schedule", "Every(0s)"}},
		{"negative offset", scheduler.Job{Name: "j", Func: noop, Schedule: scheduler.Every(time.Hour).Offset(-time.Second)}, []string{"Schedule", "Offset(-1s)"}},
		{"offset of a whole interval", scheduler.Job{Name: "j", Func: noop, Schedule: scheduler.Every(time.Hour).Offset(time.Hour)}, []string{"Schedule", "less than the interval"}},
		{"negative jitter", scheduler.Job{Name: "j", Func: noop, Interval: time.Second, Jitter: -1}, []string{"Jitter"}},
		{"unknown misfire", scheduler.Job{Name: "j", Func: noop, Interval: time.Second, Misfire: 7}, []string{"Misfire", "misfire(7)"}},
		{"negative misfire window", scheduler.Job{Name: "j", Func: noop, Interval: time.Second, MisfireWindow: -1}, []string{"MisfireWindow"}},
		{"misfire window too wide", scheduler.Job{Name: "j", Func: noop, Interval: time.Second, MisfireWindow: scheduler.MaxStartDeadline + 1}, []string{"MisfireWindow", "MaxStartDeadline"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := scheduler.New(scheduler.Options{}).Add(tt.job)
			if !errors.Is(err, scheduler.ErrInvalidJob) {
				t.Fatalf("Add = %v; want ErrInvalidJob", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestMisfireString(t *testing.T) {
	for m, want := range map[scheduler.Misfire]string{scheduler.Skip: "skip", scheduler.RunOnce: "run-once", 9: "misfire(9)"} {
		if got := m.String(); got != want {
			t.Errorf("Misfire(%d).String() = %q; want %q", int(m), got, want)
		}
	}
}
