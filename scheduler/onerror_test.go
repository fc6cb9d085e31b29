package scheduler

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// errorLog collects what Options.OnError is called with.
type errorLog struct {
	mu   sync.Mutex
	errs map[string][]error
}

func (l *errorLog) add(job string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.errs == nil {
		l.errs = map[string][]error{}
	}
	l.errs[job] = append(l.errs[job], err)
}

func (l *errorLog) get(job string) []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs[job]...)
}

// TestOnErrorReportsEveryKind checks that OnError hears of each kind of
// error the scheduler hits, each one recognizable with errors.Is: a job's
// own error, a panic, a claim that got no answer, and a registration that
// failed.
func TestOnErrorReportsEveryKind(t *testing.T) {
	jobErr := errors.New("disk full")
	coord := newFakeCoord("me", "me")
	coord.registerFailures = 1
	var elog errorLog
	s := newScheduler(coord, hclog.NewNullLogger())
	s.onError = elog.add
	add := func(name string, f Func) {
		t.Helper()
		if err := s.Add(Job{Name: name, Interval: 15 * time.Millisecond, Func: f}); err != nil {
			t.Fatal(err)
		}
	}
	add("fails", func(context.Context, Run) error { return jobErr })
	add("panics", func(context.Context, Run) error { panic("boom") })
	stop := startRun(t, s)
	eventually(t, waitTimeout, func() bool {
		return len(elog.get("fails")) >= 2 && len(elog.get("panics")) >= 2 && len(elog.get("")) >= 1
	}, "OnError not called for every kind: %d job errors, %d panics, %d registration errors", len(elog.get("fails")), len(elog.get("panics")), len(elog.get("")))
	for _, err := range elog.get("fails") {
		if !errors.Is(err, jobErr) || !strings.Contains(err.Error(), `"fails"`) {
			t.Errorf("job error reported as %v; want the job's own error, wrapped with the job's name", err)
		}
	}
	for _, err := range elog.get("panics") {
		if !errors.Is(err, ErrPanic) || !strings.Contains(err.Error(), "boom") {
			t.Errorf("panic reported as %v; want ErrPanic with the panic value", err)
		}
	}
	if err := elog.get("")[0]; !strings.Contains(err.Error(), "register") || !strings.Contains(err.Error(), "fake: no quorum") {
		t.Errorf("registration failure reported as %v; want it to say so, with the cause", err)
	}

	// Claims that get no answer.
	coord.mu.Lock()
	coord.claimErr = errors.New("no quorum")
	coord.mu.Unlock()
	eventually(t, waitTimeout, func() bool {
		for _, err := range elog.get("fails") {
			if errors.Is(err, ErrClaimFailed) {
				return true
			}
		}
		return false
	}, "no ErrClaimFailed reported while claims failed")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st["fails"].ClaimFailures == 0 || st["fails"].Errors < 2 || st["panics"].Panics < 2 {
		t.Errorf("Stats() = %+v; want the reported errors counted", st)
	}
}

// TestRemoveReportsDeregistrationFailure checks that Remove says when the
// cluster could not record the removal, while the job is gone all the same.
func TestRemoveReportsDeregistrationFailure(t *testing.T) {
	coord := newFakeCoord("me", "me")
	s := newScheduler(coord, hclog.NewNullLogger())
	for _, name := range []string{"a", "b"} {
		if err := s.Add(Job{Name: name, Interval: time.Hour, Func: noop}); err != nil {
			t.Fatal(err)
		}
	}
	startRun(t, s)
	eventually(t, waitTimeout, func() bool { return len(coord.registerCalls()) >= 1 }, "Register not called on Run")
	if err := s.Remove("a"); err != nil {
		t.Errorf("Remove(a) = %v; want nil", err)
	}
	coord.mu.Lock()
	coord.registerFailures = 1
	coord.mu.Unlock()
	err := s.Remove("b")
	if err == nil || !strings.Contains(err.Error(), "fake: no quorum") || !strings.Contains(err.Error(), `"b" removed`) {
		t.Errorf("Remove(b) with a failing cluster = %v; want an error saying the job was removed and the cluster did not record it", err)
	}
	if _, ok := s.Stats()["b"]; ok {
		t.Error("job b still in Stats after Remove returned an error")
	}
	if err := s.Remove("b"); !errors.Is(err, ErrUnknownJob) {
		t.Errorf("second Remove(b) = %v; want ErrUnknownJob", err)
	}
}
