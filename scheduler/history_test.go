package scheduler

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/fsm"
)

// reporterFunc is a run leaser that also takes finished runs.
type reporterFunc func(renew, done []fsm.RunRef, finished []fsm.Finished) error

func (f reporterFunc) UpdateRuns(_ context.Context, renew, done []fsm.RunRef) ([]bool, error) {
	return make([]bool, len(renew)), f(renew, done, nil)
}

func (f reporterFunc) ReportRuns(_ context.Context, renew, done []fsm.RunRef, finished []fsm.Finished) ([]bool, error) {
	return make([]bool, len(renew)), f(renew, done, finished)
}

// A finished run's lease end and its history report travel in one update,
// and a failed update keeps both for the retry.
func TestFinishedRunReportedWithLeaseEnd(t *testing.T) {
	type call struct {
		done     []fsm.RunRef
		finished []fsm.Finished
	}
	var mu sync.Mutex
	var calls []call
	fail := true
	k := newLeaseKeeper(reporterFunc(func(_, done []fsm.RunRef, finished []fsm.Finished) error {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, call{slices.Clone(done), slices.Clone(finished)})
		if fail {
			fail = false
			return errors.New("no quorum")
		}
		return nil
	}), hclog.NewNullLogger())
	s := &Scheduler{keeper: k}
	ref := fsm.RunRef{Job: "j", Tick: 7}
	k.begin(ref, time.Minute, time.Now(), func() {})
	long := strings.Repeat("x", 10*fsm.MaxErrorBytes)
	s.finished(&ref, Run{Job: "j", Tick: 7, At: time.Unix(0, 70), Token: 9}, time.Now(), errors.New(long))

	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		k.run(ctx)
	}()
	defer func() { cancel(); <-stopped }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(calls)
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d updates sent, want 2 (a failed one and its retry)", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, c := range calls[:2] {
		if len(c.done) != 1 || c.done[0] != ref || len(c.finished) != 1 {
			t.Fatalf("update %d = %+v, want the lease end and the report together", i, c)
		}
		h := c.finished[0]
		if h.Job != "j" || h.Entry.Token != 9 || h.Entry.Tick != 7 || h.Entry.At != 70 || h.Entry.Result != fsm.ResultError {
			t.Errorf("update %d reported %+v", i, h)
		}
		if len(h.Entry.Error) != fsm.MaxErrorBytes+1 {
			t.Errorf("update %d carries %d bytes of error text, want %d (cut on the node)", i, len(h.Entry.Error), fsm.MaxErrorBytes+1)
		}
	}
}
