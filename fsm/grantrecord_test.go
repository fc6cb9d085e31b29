package fsm_test

import (
	"testing"

	"github.com/interlockraft/interlock/fsm"
)

// TestGrantedRecord grants a job's ticks with gaps and checks what
// JobState.Granted says of every instant around them, on the live state
// and on one restored from its snapshot.
func TestGrantedRecord(t *testing.T) {
	type ask struct {
		k              int64
		granted, known bool
	}
	tests := []struct {
		name    string
		granted []int64
		asks    []ask
	}{
		{
			name:    "a first grant knows that nothing came before it",
			granted: []int64{10},
			asks:    []ask{{10, true, true}, {9, false, true}, {1, false, true}, {11, false, true}},
		},
		{
			name:    "gaps between kept grants are known never granted",
			granted: []int64{2, 3, 5, 8},
			asks:    []ask{{8, true, true}, {7, false, true}, {6, false, true}, {5, true, true}, {4, false, true}, {3, true, true}, {2, true, true}, {1, false, true}},
		},
		{
			name:    "the oldest grant falls out and bounds what is known",
			granted: []int64{1, 3, 5, 7, 9, 11},
			// Kept: 11 (latest), then 9, 7, 5, 3; 1 fell out and is the floor.
			asks: []ask{{11, true, true}, {10, false, true}, {3, true, true}, {2, false, true}, {1, false, false}, {0, false, false}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fsm.New(nil)
			for i, k := range tt.granted {
				res := applyAnyOrder(t, f, uint64(i+1), at(k), "n1", claim("a", k))
				if !res.Outcomes[0].Granted() {
					t.Fatalf("claim for tick %d refused: %v", k, res.Outcomes[0].Reason)
				}
			}
			restored := fsm.New(nil)
			if err := restore(t, restored, snapshotBytes(t, f)); err != nil {
				t.Fatal(err)
			}
			for _, state := range []struct {
				name string
				f    *fsm.FSM
			}{{"live", f}, {"restored", restored}} {
				st, ok := state.f.Job("a")
				if !ok {
					t.Fatalf("%s: job a has no state", state.name)
				}
				for _, a := range tt.asks {
					granted, known := st.Granted(at(a.k))
					if granted != a.granted || known != a.known {
						t.Errorf("%s: Granted(tick %d) = %v, %v; want %v, %v", state.name, a.k, granted, known, a.granted, a.known)
					}
				}
			}
		})
	}
}

// TestRecordStartsAfterRestoreWithoutOne restores a snapshot without grant
// records, as older builds and states that saw only plain claims write it:
// the job's earlier instants are unknown, and refused as taken, until an
// any-order grant starts the record from the grant it follows.
func TestRecordStartsAfterRestoreWithoutOne(t *testing.T) {
	f := fsm.New(nil)
	applyClaims(t, f, 1, at(10), "n1", claim("a", 10))
	snap := snapshotBytes(t, f)
	if snap[0] != 2 {
		t.Fatalf("snapshot of plain claims only has format %d, want 2", snap[0])
	}
	restored := fsm.New(nil)
	if err := restore(t, restored, snap); err != nil {
		t.Fatal(err)
	}
	if got := applyAnyOrder(t, restored, 2, at(10), "n2", claim("a", 9)).Outcomes[0].Reason; got != fsm.ReasonTaken {
		t.Errorf("claim for tick 9 with no record = %v, want taken", got)
	}
	applyAnyOrder(t, restored, 3, at(12), "n1", claim("a", 12))
	st, _ := restored.Job("a")
	for _, a := range []struct {
		k              int64
		granted, known bool
	}{{12, true, true}, {11, false, true}, {10, true, true}, {9, false, false}} {
		if granted, known := st.Granted(at(a.k)); granted != a.granted || known != a.known {
			t.Errorf("Granted(tick %d) = %v, %v; want %v, %v", a.k, granted, known, a.granted, a.known)
		}
	}
	if got := applyClaims(t, restored, 4, at(12), "n2", claim("a", 11)).Outcomes[0].Reason; got != fsm.ReasonSuperseded {
		t.Errorf("plain claim for tick 11, never granted, after 12 = %v, want superseded", got)
	}
	if got := applyAnyOrder(t, restored, 5, at(12), "n2", claim("a", 11)).Outcomes[0]; got.Reason != fsm.ReasonGranted || got.Token != 5 {
		t.Errorf("any-order claim for tick 11, never granted, after 12 = %+v, want granted with token 5", got)
	}
}
