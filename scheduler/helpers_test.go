package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/fsm"
	"github.com/interlockraft/interlock/internal/seam"
)

// eventually polls cond every few milliseconds until it holds, and fails
// the test with msg if it does not within timeout. Timeouts are generous on
// purpose: the tests run on small, busy machines under -race.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, fmt.Sprintf(msg, args...))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// startRun runs s in a goroutine. stop cancels its context, waits for Run to
// return and returns Run's error; it is also called on cleanup, so no test
// leaks the scheduler's goroutines.
func startRun(t *testing.T, s *Scheduler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var (
		once sync.Once
		err  error
	)
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				err = errors.New("Run did not return within 10s of cancel")
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return stop
}

// isRunning reports whether s.Run has started and not yet returned.
func isRunning(s *Scheduler) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// runLog collects the runs of jobs, as the ground truth of a test.
type runLog struct {
	mu   sync.Mutex
	runs []Run
}

func (l *runLog) add(r Run) {
	l.mu.Lock()
	l.runs = append(l.runs, r)
	l.mu.Unlock()
}

func (l *runLog) snapshot() []Run {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.runs)
}

func (l *runLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.runs)
}

// record returns a job body that logs its run.
func (l *runLog) record() Func {
	return func(_ context.Context, r Run) error {
		l.add(r)
		return nil
	}
}

// claimCall is one Claim call seen by fakeCoord.
type claimCall struct {
	at     time.Time // wall clock when Claim answered, after claimDelay
	sent   time.Time // wall clock when Claim was called
	claims []fsm.Claim
	res    *fsm.ClaimResult // nil if err
	err    error
}

// registerCall is one Register call seen by fakeCoord: copies of the
// arguments taken at call time, and the slices themselves, so a test can
// check that the scheduler does not change them afterwards.
type registerCall struct {
	add, remove       []string
	addArg, removeArg []string
}

// fakeCoord is a Coordinator backed by a real *fsm.FSM that this process
// alone applies entries to, standing in for a Raft cluster.
type fakeCoord struct {
	name string

	mu    sync.Mutex
	fsm   *fsm.FSM
	index uint64

	candidates []string
	// claimErr, if set, fails every Claim.
	claimErr error
	// loseReply applies each claim batch but returns an error, as when the
	// entry commits and the reply is lost.
	loseReply bool
	// steal, if set, is asked about each claim before it is applied; a
	// non-empty node name makes the fake apply the same claim for that node
	// first, as if it had got there earlier. Stealing for the claimer's own
	// name simulates an earlier attempt of the same claim that committed.
	steal func(c fsm.Claim) string
	// lastGrant, if set, replaces LastGrant's answer; it gets the FSM's.
	lastGrant func(job string, st fsm.JobState, ok bool) (fsm.JobState, bool)
	// registerFailures fails that many Register calls before succeeding.
	registerFailures int
	// claimDelay, if set, is how long each Claim takes to commit, as a
	// Raft commit under load would.
	claimDelay time.Duration
	// plainClaims sends this node's claims as plain claims, as a node does
	// while some server does not speak fsm.ProtocolAnyOrder.
	plainClaims bool

	claims     []claimCall
	stolen     map[string]uint64 // job/tick → token of the stolen grant
	registers  []registerCall
	lastGrants int
}

var _ seam.Coordinator = (*fakeCoord)(nil)

func newFakeCoord(name string, candidates ...string) *fakeCoord {
	return &fakeCoord{name: name, fsm: fsm.New(nil), candidates: candidates, stolen: map[string]uint64{}}
}

func jobTick(job string, tick int64) string { return fmt.Sprintf("%s/%d", job, tick) }

func (f *fakeCoord) Name() string { return f.name }

func (f *fakeCoord) Logger() hclog.Logger { return hclog.NewNullLogger() }

// applyLocked commits one claim batch to the FSM at the next index, stamped
// with the current time, as the leader would. Its claims may be granted out
// of order, as in a cluster whose servers all speak fsm.ProtocolAnyOrder.
func (f *fakeCoord) applyLocked(node string, claims []fsm.Claim) *fsm.ClaimResult {
	return f.applyOrderedLocked(node, claims, true)
}

// applyOrderedLocked is applyLocked with the choice of rule: anyOrder false
// sends the batch as plain claims.
func (f *fakeCoord) applyOrderedLocked(node string, claims []fsm.Claim, anyOrder bool) *fsm.ClaimResult {
	data := fsm.EncodeClaims(fsm.ClaimBatch{Node: node, Claims: claims, AnyOrder: anyOrder})
	if err := fsm.Stamp(data, time.Now()); err != nil {
		panic(err)
	}
	f.index++
	out := f.fsm.Apply(&raft.Log{Index: f.index, Term: 1, Type: raft.LogCommand, Data: data})
	res, ok := out.(*fsm.ClaimResult)
	if !ok {
		panic(fmt.Sprintf("fsm.Apply returned %T (%v)", out, out))
	}
	return res
}

func (f *fakeCoord) Claim(ctx context.Context, claims []fsm.Claim, anyOrder bool) (*fsm.ClaimResult, error) {
	sent := time.Now()
	f.mu.Lock()
	delay := f.claimDelay
	f.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	call := claimCall{at: time.Now(), sent: sent, claims: slices.Clone(claims)}
	switch {
	case ctx.Err() != nil:
		call.err = ctx.Err()
	case f.claimErr != nil:
		call.err = f.claimErr
	default:
		if f.steal != nil {
			for _, c := range claims {
				if thief := f.steal(c); thief != "" {
					res := f.applyLocked(thief, []fsm.Claim{c})
					if res.Outcomes[0].Granted() {
						f.stolen[jobTick(c.Job, c.Tick)] = res.Outcomes[0].Token
					}
				}
			}
		}
		call.res = f.applyOrderedLocked(f.name, claims, anyOrder && !f.plainClaims)
		if f.loseReply {
			call.err = errors.New("fake: reply lost")
		}
	}
	f.claims = append(f.claims, call)
	if call.err != nil {
		return nil, call.err
	}
	return call.res, nil
}

func (f *fakeCoord) Register(ctx context.Context, add, remove []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.registers = append(f.registers, registerCall{
		add: slices.Clone(add), remove: slices.Clone(remove),
		addArg: add, removeArg: remove,
	})
	if f.registerFailures > 0 {
		f.registerFailures--
		return errors.New("fake: no quorum")
	}
	return ctx.Err()
}

func (f *fakeCoord) Candidates(string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.candidates)
}

func (f *fakeCoord) LastGrant(job string) (fsm.JobState, bool) {
	st, ok := f.fsm.Job(job)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastGrants++
	if f.lastGrant != nil {
		return f.lastGrant(job, st, ok)
	}
	return st, ok
}

func (f *fakeCoord) claimCalls() []claimCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.claims)
}

func (f *fakeCoord) registerCalls() []registerCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.registers)
}

func (f *fakeCoord) lastGrantCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastGrants
}

func (f *fakeCoord) stolenToken(job string, tick int64) (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tok, ok := f.stolen[jobTick(job, tick)]
	return tok, ok
}
