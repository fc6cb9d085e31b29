package scheduler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/scheduler"
)

// syncBuffer is a bytes.Buffer safe for the scheduler's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestOptionsSlogGetsJobErrors checks that a scheduler given a *slog.Logger
// logs a job's error there, at Warn, with the stable job and tick keys.
func TestOptionsSlogGetsJobErrors(t *testing.T) {
	var buf syncBuffer
	s := scheduler.New(scheduler.Options{Slog: slog.New(slog.NewJSONHandler(&buf, nil))})
	if err := s.Add(scheduler.Job{Name: "slogged", Interval: 10 * time.Millisecond, Func: func(context.Context, scheduler.Run) error {
		return errors.New("no disk")
	}}); err != nil {
		t.Fatal(err)
	}
	run := runInBackground(t, s.Run)
	clustertest.Eventually(t, 10*time.Second, func() bool { return s.Stats()["slogged"].Errors >= 1 }, "the job never failed")
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, line := range bytes.Split(bytes.TrimSpace([]byte(buf.String())), []byte("\n")) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if rec["msg"] == "job failed" {
			found = true
			if rec["level"] != "WARN" || rec["job"] != "slogged" || rec["tick"] == nil || rec["error"] != "no disk" || rec["logger"] != "interlock.scheduler" {
				t.Errorf("job failed logged as %s; want WARN with job, tick, error and logger interlock.scheduler", line)
			}
		}
	}
	if !found {
		t.Errorf("no job failed line in the slog output:\n%s", buf.String())
	}
}
