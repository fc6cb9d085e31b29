package fsm_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/fsm"
)

// randomLog returns n entries of a plausible cluster history: claim batches
// from several nodes around an advancing clock (some late, some early, some
// duplicated), registrations, Raft's own entries and a few corrupt ones.
func randomLog(t testing.TB, seed uint64, n int) []*raft.Log {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	nodes := []string{"n0", "n1", "n2", "n3"}
	jobs := []string{"j0", "j1", "j2", "j3", "j4", "j5"}
	logs := make([]*raft.Log, 0, n)
	for i := range n {
		index := uint64(i + 1)
		tick := int64(i / 4)
		now := at(tick) + rng.Int64N(3*sec) - sec
		node := nodes[rng.IntN(len(nodes))]
		var l raft.Log
		l.Index, l.Type = index, raft.LogCommand
		switch p := rng.IntN(100); {
		case p < 60:
			var b fsm.ClaimBatch
			b.Node = node
			for range rng.IntN(5) {
				k := tick + rng.Int64N(5) - 2
				b.Claims = append(b.Claims, claim(jobs[rng.IntN(len(jobs))], k))
			}
			l.Data = fsm.EncodeClaims(b)
		case p < 85:
			r := fsm.Registration{Node: node, Reset: rng.IntN(5) == 0}
			for range rng.IntN(3) {
				r.Add = append(r.Add, jobs[rng.IntN(len(jobs))])
			}
			for range rng.IntN(2) {
				r.Remove = append(r.Remove, jobs[rng.IntN(len(jobs))])
			}
			l.Data = fsm.EncodeRegistration(r)
		case p < 88:
			l.Type = raft.LogNoop
		case p < 90:
			l.Data = fsm.EncodePause(fsm.Pause{Job: jobs[rng.IntN(len(jobs))], Paused: rng.IntN(2) == 0})
		case p < 92:
			l.Data = fsm.EncodeRunNow(jobs[rng.IntN(len(jobs))])
		case p < 95:
			j := jobs[rng.IntN(len(jobs))]
			l.Data = fsm.EncodeRunUpdate(fsm.RunUpdate{Node: node, Done: []fsm.RunRef{{Job: j, Tick: tick}}, Finished: []fsm.Finished{{Job: j, Entry: fsm.HistoryEntry{Tick: tick, At: at(tick), Start: now, Duration: rng.Int64N(sec), Result: fsm.RunResult(rng.IntN(3)), Error: "e"}}}})
		default:
			l.Data = fsm.EncodeClaims(fsm.ClaimBatch{Node: node, Claims: []fsm.Claim{claim("j0", tick)}})
			l.Data = l.Data[:rng.IntN(len(l.Data))]
			logs = append(logs, &l)
			continue
		}
		if l.Type == raft.LogCommand {
			if err := fsm.Stamp(l.Data, timeAt(now)); err != nil {
				t.Fatalf("Stamp: %v", err)
			}
		}
		logs = append(logs, &l)
	}
	return logs
}

// comparableResult turns an Apply result into something reflect.DeepEqual can
// compare across FSMs (errors are compared by message).
func comparableResult(out interface{}) interface{} {
	if err, ok := out.(error); ok {
		return "error: " + err.Error()
	}
	return out
}

func TestSameLogSameState(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			logs := randomLog(t, seed, 400)
			a, b := fsm.New(nil), fsm.New(nil)
			granted := 0
			for _, l := range logs {
				ra, rb := comparableResult(a.Apply(l)), comparableResult(b.Apply(l))
				if !reflect.DeepEqual(ra, rb) {
					t.Fatalf("entry %d: results differ: %+v vs %+v", l.Index, ra, rb)
				}
				if cr, ok := ra.(*fsm.ClaimResult); ok {
					for _, o := range cr.Outcomes {
						if o.Reason == fsm.ReasonGranted {
							granted++
						}
					}
				}
			}
			// Guard against a generator that never exercises the grant path.
			if granted < 20 {
				t.Fatalf("only %d grants in the log; generator is not exercising the state machine", granted)
			}
			sa, sb := snapshotBytes(t, a), snapshotBytes(t, b)
			if !bytes.Equal(sa, sb) {
				t.Fatalf("two FSMs applying the same log produced different snapshots")
			}

			// A replica that restarts from a snapshot taken midway and
			// replays the tail reaches the same state.
			mid := len(logs) / 2
			c := fsm.New(nil)
			for _, l := range logs[:mid] {
				c.Apply(l)
			}
			d := fsm.New(nil)
			if err := restore(t, d, snapshotBytes(t, c)); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			for _, l := range logs[mid:] {
				d.Apply(l)
			}
			if !bytes.Equal(snapshotBytes(t, d), sa) {
				t.Fatalf("snapshot + tail reached a different state than the full log")
			}
		})
	}
}

// TestEqualStatesEncodeEqually builds the same state through different entry
// orders and checks that the snapshots are byte-for-byte equal.
func TestEqualStatesEncodeEqually(t *testing.T) {
	a, b := fsm.New(nil), fsm.New(nil)
	register(t, a, 1, fsm.Registration{Node: "n1", Add: []string{"x", "y", "z"}})
	register(t, a, 2, fsm.Registration{Node: "n2", Add: []string{"z", "x"}})
	applyClaims(t, a, 3, at(1), "n1", claim("x", 1), claim("y", 1))

	register(t, b, 1, fsm.Registration{Node: "n2", Add: []string{"x", "z"}})
	register(t, b, 2, fsm.Registration{Node: "n1", Add: []string{"z", "y", "x"}})
	applyClaims(t, b, 3, at(1), "n1", claim("y", 1), claim("x", 1))

	if !bytes.Equal(snapshotBytes(t, a), snapshotBytes(t, b)) {
		t.Errorf("equal states encoded to different snapshots")
	}
}
