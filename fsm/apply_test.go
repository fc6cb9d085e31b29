package fsm_test

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/fsm"
)

func timeAt(ns int64) time.Time { return time.Unix(0, ns) }

// TestApplyNonCommandEntries checks that entries Raft writes for itself are
// accepted without touching the state.
func TestApplyNonCommandEntries(t *testing.T) {
	types := []raft.LogType{raft.LogNoop, raft.LogBarrier, raft.LogConfiguration, raft.LogAddPeerDeprecated, raft.LogRemovePeerDeprecated}
	f := populated(t)
	wantJobs := f.Jobs()
	for i, typ := range types {
		index := uint64(8 + i)
		// Data that would be a valid claim must still be ignored.
		data := fsm.EncodeClaims(fsm.ClaimBatch{Node: "n1", Claims: []fsm.Claim{claim("fresh", 1)}})
		if out := f.Apply(&raft.Log{Index: index, Type: typ, Data: data}); out != nil {
			t.Errorf("Apply(%s) = %v, want nil", typ, out)
		}
		if f.AppliedIndex() != index {
			t.Errorf("Apply(%s): AppliedIndex = %d, want %d", typ, f.AppliedIndex(), index)
		}
	}
	if got := f.Jobs(); !maps.Equal(got, wantJobs) {
		t.Errorf("non-command entries changed Jobs: %+v", got)
	}
}

func TestAppliedIndexNeverGoesBack(t *testing.T) {
	f := fsm.New(nil)
	applyClaims(t, f, 10, at(1), "n1", claim("a", 1))
	applyClaims(t, f, 5, at(2), "n1", claim("a", 2))
	if f.AppliedIndex() != 10 {
		t.Errorf("AppliedIndex = %d after applying 10 then 5, want 10", f.AppliedIndex())
	}
}

func TestJobLookup(t *testing.T) {
	f := fsm.New(nil)
	if st, ok := f.Job("a"); ok {
		t.Errorf("Job(a) on an empty FSM = %+v, true; want false", st)
	}
	applyClaims(t, f, 3, at(1)+7, "n1", claim("a", 1))
	want := fsm.JobState{LastAt: at(1), LastTick: 1, Holder: "n1", Token: 3, GrantedAt: at(1) + 7}
	if st, ok := f.Job("a"); !ok || fsm.WithoutRecord(st) != want {
		t.Errorf("Job(a) = %+v, %v; want %+v, true", st, ok, want)
	}
}

func TestJobsReturnsACopy(t *testing.T) {
	f := fsm.New(nil)
	applyClaims(t, f, 1, at(1), "n1", claim("a", 1))
	jobs := f.Jobs()
	jobs["a"] = fsm.JobState{LastTick: 99}
	delete(jobs, "a")
	jobs["b"] = fsm.JobState{LastTick: 1}
	if st, ok := f.Job("a"); !ok || st.LastTick != 1 {
		t.Errorf("modifying Jobs() result changed the FSM: Job(a) = %+v, %v", st, ok)
	}
	if _, ok := f.Job("b"); ok {
		t.Errorf("adding to Jobs() result added a job to the FSM")
	}
}

// TestReadsConcurrentWithApply exercises the read methods while entries are
// applied; the race detector reports any unsynchronised access.
func TestReadsConcurrentWithApply(t *testing.T) {
	f := fsm.New(nil)
	const entries = 200
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				_ = f.Jobs()
				_, _ = f.Job("a")
				nodes := f.Registered("a")
				if !slices.IsSorted(nodes) {
					t.Errorf("Registered(a) = %q is not sorted", nodes)
					return
				}
				_ = f.AppliedIndex()
			}
		})
	}
	for i := uint64(1); i <= entries; i++ {
		node := fmt.Sprintf("n%d", i%7)
		if i%2 == 0 {
			register(t, f, i, fsm.Registration{Node: node, Reset: i%6 == 0, Add: []string{"a"}})
		} else {
			applyClaims(t, f, i, at(int64(i)), node, claim("a", int64(i)))
		}
	}
	close(done)
	wg.Wait()
	if f.AppliedIndex() != entries {
		t.Errorf("AppliedIndex = %d, want %d", f.AppliedIndex(), entries)
	}
	if st, _ := f.Job("a"); st.LastTick != entries-1 || st.Token != entries-1 {
		t.Errorf("Job(a) = %+v, want tick and token %d", st, entries-1)
	}
}
