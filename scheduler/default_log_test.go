package scheduler_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/interlockraft/interlock/scheduler"
)

// defaultLogChildEnv marks the child process of
// TestDefaultLoggerReportsPanicsAndErrors.
const defaultLogChildEnv = "INTERLOCK_TEST_DEFAULT_LOG_CHILD"

// TestDefaultLoggerReportsPanicsAndErrors runs a local scheduler with no
// Logger in a child process and reads the child's real stderr: the
// recovered panic and the job's error must both be there. A local
// scheduler used to default to a null logger and print nothing.
func TestDefaultLoggerReportsPanicsAndErrors(t *testing.T) {
	if os.Getenv(defaultLogChildEnv) == "1" {
		runDefaultLogChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDefaultLoggerReportsPanicsAndErrors$", "-test.count=1")
	cmd.Env = append(os.Environ(), defaultLogChildEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child failed: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stderr.String()
	for _, want := range []string{
		"[ERROR] interlock.scheduler: job panicked: job=default-log-job",
		"panic=\"boom from the job\"",
		"[WARN]  interlock.scheduler: job failed: job=default-log-job",
		"error=\"the job's own error\"",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the default logger did not write %q to stderr; stderr was:\n%s", want, out)
		}
	}
}

// runDefaultLogChild is the child's side: one run panics, the next returns
// an error, then the scheduler stops, which waits for both to be logged.
func runDefaultLogChild(t *testing.T) {
	s := scheduler.New(scheduler.Options{})
	var calls atomic.Int32
	err := s.Add(scheduler.Job{Name: "default-log-job", Interval: 10 * time.Millisecond, Func: func(context.Context, scheduler.Run) error {
		switch calls.Add(1) {
		case 1:
			panic("boom from the job")
		case 2:
			return errors.New("the job's own error")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() < 3 {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the job ran %d times in 10s, want 3", calls.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
}
