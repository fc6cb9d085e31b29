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
			// Most batches may be granted out of order, as in a cluster
			// on protocol 3; some are plain, as while a server is older.
			// Some claims allow a start several ticks late and hold a run
			// lease, so late grants and their leases happen.
			var b fsm.ClaimBatch
			b.Node = node
			b.AnyOrder = rng.IntN(4) != 0
			for range rng.IntN(5) {
				k := tick + rng.Int64N(5) - 2
				c := claim(jobs[rng.IntN(len(jobs))], k)
				if rng.IntN(2) == 0 {
					c.Deadline += 3 * sec
				}
				if rng.IntN(3) == 0 {
					c.Exclusive, c.LeaseTTL = true, 2*sec
				}
				b.Claims = append(b.Claims, c)
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
			ref := fsm.RunRef{Job: j, Tick: tick - rng.Int64N(3)}
			u := fsm.RunUpdate{Node: node, Done: []fsm.RunRef{ref}, Finished: []fsm.Finished{{Job: j, Entry: fsm.HistoryEntry{Tick: tick, At: at(tick), Start: now, Duration: rng.Int64N(sec), Result: fsm.RunResult(rng.IntN(3)), Error: "e"}}}}
			if rng.IntN(2) == 0 {
				u.Renew, u.Done = u.Done, nil
			}
			l.Data = fsm.EncodeRunUpdate(u)
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
			granted, late := 0, 0
			snaps := map[int][]byte{}
			for i, l := range logs {
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
				if i%50 == 0 {
					snaps[i+1] = snapshotBytes(t, a)
				}
			}
			// A job keeps its latest late grant: count the jobs that do.
			for _, st := range a.Jobs() {
				for k := range int64(len(logs)) {
					if _, _, ok := st.GrantOf(at(k)); ok && at(k) != st.LastAt {
						late++
					}
				}
			}
			// Guard against a generator that never exercises the grant path,
			// or never grants out of order.
			if granted < 20 || late == 0 {
				t.Fatalf("%d grants in the log, %d jobs keep a late grant; generator is not exercising the state machine", granted, late)
			}
			sa, sb := snapshotBytes(t, a), snapshotBytes(t, b)
			if !bytes.Equal(sa, sb) {
				t.Fatalf("two FSMs applying the same log produced different snapshots")
			}

			// A replica that restarts from a snapshot taken anywhere and
			// replays the tail reaches the same state.
			for from, snap := range snaps {
				d := fsm.New(nil)
				if err := restore(t, d, snap); err != nil {
					t.Fatalf("Restore of the snapshot after entry %d: %v", from, err)
				}
				for _, l := range logs[from:] {
					d.Apply(l)
				}
				if !bytes.Equal(snapshotBytes(t, d), sa) {
					t.Fatalf("snapshot after entry %d + tail reached a different state than the full log", from)
				}
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
