package scheduler

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/interlockraft/interlock/internal/seam"
)

func noop(context.Context, Run) error { return nil }

func TestAddRejectsInvalidJobs(t *testing.T) {
	tests := []struct {
		name      string
		job       Job
		clustered bool
		field     string // the message must name it
	}{
		{"zero interval", Job{Name: "j", Func: noop}, false, "Interval"},
		{"negative interval", Job{Name: "j", Interval: -time.Second, Func: noop}, false, "Interval"},
		{"zero interval clustered", Job{Name: "j", Func: noop}, true, "Interval"},
		{"nil func", Job{Name: "j", Interval: time.Second}, false, "Func"},
		{"nil func clustered", Job{Name: "j", Interval: time.Second}, true, "Func"},
		{"empty name clustered", Job{Interval: time.Second, Func: noop}, true, "Name"},
		{"overlap out of range", Job{Name: "j", Interval: time.Second, Func: noop, Overlap: 2}, false, "Overlap"},
		{"negative overlap", Job{Name: "j", Interval: time.Second, Func: noop, Overlap: -1}, true, "Overlap"},
		{"negative start deadline", Job{Name: "j", Interval: time.Second, Func: noop, StartDeadline: -1}, false, "StartDeadline is -1ns; use 0 for the default"},
		{"start deadline past the maximum", Job{Name: "j", Interval: 7 * 24 * time.Hour, Func: noop, StartDeadline: MaxStartDeadline + 1}, true, "StartDeadline"},
		{"negative fallback delay", Job{Name: "j", Interval: time.Second, Func: noop, FallbackDelay: -time.Millisecond}, true, "FallbackDelay is -1ms; use 0 for the default"},
		{"negative run lease", Job{Name: "j", Interval: time.Second, Func: noop, RunLease: -time.Second}, true, "RunLease is -1s; use 0 for the default"},
		{"negative retries", Job{Name: "j", Interval: time.Second, Func: noop, Retries: -1}, false, "Retries is -1; use 0 for no retries"},
		{"negative retry backoff", Job{Name: "j", Interval: time.Second, Func: noop, Retries: 1, RetryBackoff: -time.Millisecond}, true, "RetryBackoff is -1ms; use 0 for the default"},
		{"negative timeout", Job{Name: "j", Interval: time.Second, Func: noop, Timeout: -time.Second}, false, "Timeout is -1s; use 0 for no deadline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.job.normalize(tt.clustered, time.Now())
			checkInvalid(t, "normalize", err, tt.field)

			var coord seam.Coordinator
			if tt.clustered {
				coord = newFakeCoord("me", "me")
			}
			s := newScheduler(coord, nil)
			checkInvalid(t, "Add", s.Add(tt.job), tt.field)
			if n := len(s.Stats()); n != 0 {
				t.Errorf("a rejected job was added: %d jobs", n)
			}
		})
	}
}

func checkInvalid(t *testing.T, what string, err error, field string) {
	t.Helper()
	if !errors.Is(err, ErrInvalidJob) {
		t.Fatalf("%s: error %v, want ErrInvalidJob", what, err)
	}
	if !strings.Contains(err.Error(), field) {
		t.Errorf("%s: error %q does not name the field %s", what, err, field)
	}
}

func TestEmptyNameIsFineWithoutCluster(t *testing.T) {
	s := newScheduler(nil, nil)
	if err := s.Add(Job{Interval: time.Second, Func: noop}); err != nil {
		t.Fatalf("local job without a name: %v", err)
	}
}

func TestNormalizeDefaults(t *testing.T) {
	tests := []struct {
		name                  string
		job                   Job
		wantStart, wantFallbk time.Duration
	}{
		{"1s", Job{Interval: time.Second}, time.Second, 250 * time.Millisecond},
		{"2s is the cap", Job{Interval: 2 * time.Second}, 2 * time.Second, 500 * time.Millisecond},
		{"1h capped", Job{Interval: time.Hour}, time.Hour, 500 * time.Millisecond},
		{"20ms", Job{Interval: 20 * time.Millisecond}, 20 * time.Millisecond, 5 * time.Millisecond},
		{"tiny interval gets a positive fallback", Job{Interval: 3}, 3, time.Millisecond},
		{"explicit values kept", Job{Interval: time.Second, StartDeadline: 3 * time.Second, FallbackDelay: 10 * time.Millisecond}, 3 * time.Second, 10 * time.Millisecond},
		{"explicit start only", Job{Interval: 8 * time.Second, StartDeadline: time.Second}, time.Second, 500 * time.Millisecond},
		{"daily job keeps one interval", Job{Interval: 24 * time.Hour}, 24 * time.Hour, 500 * time.Millisecond},
		{"weekly job capped at the maximum", Job{Interval: 7 * 24 * time.Hour}, MaxStartDeadline, 500 * time.Millisecond},
		{"explicit maximum kept", Job{Interval: 7 * 24 * time.Hour, StartDeadline: MaxStartDeadline}, MaxStartDeadline, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		for _, clustered := range []bool{false, true} {
			j := tt.job
			j.Name, j.Func = "j", noop
			got, err := j.normalize(clustered, time.Now())
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if got.StartDeadline != tt.wantStart || got.FallbackDelay != tt.wantFallbk {
				t.Errorf("%s (clustered=%v): StartDeadline %s, FallbackDelay %s; want %s, %s",
					tt.name, clustered, got.StartDeadline, got.FallbackDelay, tt.wantStart, tt.wantFallbk)
			}
			if got.Interval != j.Interval || got.Name != j.Name || got.Overlap != j.Overlap {
				t.Errorf("%s: normalize changed other fields: %+v", tt.name, got)
			}
		}
	}
}

func TestAddStoresNormalizedJob(t *testing.T) {
	s := newScheduler(nil, nil)
	if err := s.Add(Job{Name: "j", Interval: time.Second, Func: noop}); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	j := s.jobs["j"].job
	s.mu.Unlock()
	if j.StartDeadline != time.Second || j.FallbackDelay != 250*time.Millisecond {
		t.Errorf("stored job has StartDeadline %s, FallbackDelay %s; want defaults filled", j.StartDeadline, j.FallbackDelay)
	}
}

func TestAddDuplicateName(t *testing.T) {
	for _, clustered := range []bool{false, true} {
		var coord seam.Coordinator
		if clustered {
			coord = newFakeCoord("me", "me")
		}
		s := newScheduler(coord, nil)
		if err := s.Add(Job{Name: "report", Interval: time.Second, Func: noop}); err != nil {
			t.Fatal(err)
		}
		err := s.Add(Job{Name: "report", Interval: 2 * time.Second, Func: noop})
		if !errors.Is(err, ErrDuplicateJob) {
			t.Fatalf("clustered=%v: second Add of the same name: %v, want ErrDuplicateJob", clustered, err)
		}
		if !strings.Contains(err.Error(), "report") {
			t.Errorf("duplicate error %q does not name the job", err)
		}
		// The first job is kept, unchanged.
		s.mu.Lock()
		iv := s.jobs["report"].job.Interval
		s.mu.Unlock()
		if iv != time.Second {
			t.Errorf("duplicate Add replaced the job: interval %s", iv)
		}
		// After Remove the name is free again.
		if err := s.Remove("report"); err != nil {
			t.Fatal(err)
		}
		if err := s.Add(Job{Name: "report", Interval: 2 * time.Second, Func: noop}); err != nil {
			t.Errorf("Add after Remove: %v", err)
		}
	}
	// Without a cluster the empty name is a name like any other.
	s := newScheduler(nil, nil)
	if err := s.Add(Job{Interval: time.Second, Func: noop}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(Job{Interval: time.Second, Func: noop}); !errors.Is(err, ErrDuplicateJob) {
		t.Errorf("second unnamed local job: %v, want ErrDuplicateJob", err)
	}
}

func TestRemoveUnknownIsAnError(t *testing.T) {
	s := newScheduler(nil, nil)
	if err := s.Remove("nope"); !errors.Is(err, ErrUnknownJob) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Remove of an unknown job = %v; want ErrUnknownJob naming it", err)
	}
	if err := s.Add(Job{Name: "nope", Interval: time.Second, Func: noop}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Stats()["nope"]; !ok {
		t.Error("job missing from Stats after Add")
	}
}

func TestOverlapString(t *testing.T) {
	for o, want := range map[Overlap]string{
		SkipIfRunning: "skip-if-running",
		AllowOverlap:  "allow-overlap",
		Overlap(7):    "overlap(7)",
		Overlap(-1):   "overlap(-1)",
	} {
		if got := o.String(); got != want {
			t.Errorf("Overlap(%d).String() = %q, want %q", int(o), got, want)
		}
	}
}
