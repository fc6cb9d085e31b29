package fsm_test

import (
	"slices"
	"testing"

	"github.com/interlockraft/interlock/fsm"
)

func TestRegistrations(t *testing.T) {
	tests := []struct {
		name string
		regs []fsm.Registration
		// want maps every job the test looks at to its registered nodes; a
		// nil slice means the job must have no registrations.
		want map[string][]string
	}{
		{
			name: "nodes are returned sorted",
			regs: []fsm.Registration{
				{Node: "n3", Add: []string{"x"}},
				{Node: "n1", Add: []string{"x"}},
				{Node: "n2", Add: []string{"x"}},
			},
			want: map[string][]string{"x": {"n1", "n2", "n3"}},
		},
		{
			name: "one registration can add many jobs",
			regs: []fsm.Registration{{Node: "n1", Add: []string{"x", "y", "z"}}},
			want: map[string][]string{"x": {"n1"}, "y": {"n1"}, "z": {"n1"}},
		},
		{
			name: "registering twice is idempotent",
			regs: []fsm.Registration{
				{Node: "n1", Add: []string{"x", "x"}},
				{Node: "n1", Add: []string{"x"}},
			},
			want: map[string][]string{"x": {"n1"}},
		},
		{
			name: "remove drops only that node",
			regs: []fsm.Registration{
				{Node: "n1", Add: []string{"x", "y"}},
				{Node: "n2", Add: []string{"x"}},
				{Node: "n1", Remove: []string{"x"}},
			},
			want: map[string][]string{"x": {"n2"}, "y": {"n1"}},
		},
		{
			name: "removing the last node forgets the job",
			regs: []fsm.Registration{
				{Node: "n1", Add: []string{"x"}},
				{Node: "n1", Remove: []string{"x"}},
			},
			want: map[string][]string{"x": nil},
		},
		{
			name: "removing an unregistered job is a no-op",
			regs: []fsm.Registration{
				{Node: "n1", Add: []string{"x"}},
				{Node: "n1", Remove: []string{"y"}},
				{Node: "n2", Remove: []string{"x"}},
			},
			want: map[string][]string{"x": {"n1"}, "y": nil},
		},
		{
			name: "reset drops every earlier job of the node before adding",
			regs: []fsm.Registration{
				{Node: "n1", Add: []string{"x", "y"}},
				{Node: "n2", Add: []string{"x", "y"}},
				{Node: "n1", Reset: true, Add: []string{"y", "z"}},
			},
			want: map[string][]string{"x": {"n2"}, "y": {"n1", "n2"}, "z": {"n1"}},
		},
		{
			name: "reset without adds unregisters the node entirely",
			regs: []fsm.Registration{
				{Node: "n1", Add: []string{"x", "y"}},
				{Node: "n1", Reset: true},
			},
			want: map[string][]string{"x": nil, "y": nil},
		},
		{
			name: "add wins over remove in the same registration",
			regs: []fsm.Registration{
				{Node: "n1", Add: []string{"x"}, Remove: []string{"x"}},
			},
			want: map[string][]string{"x": {"n1"}},
		},
		{
			name: "empty node is ignored",
			regs: []fsm.Registration{
				{Node: "", Add: []string{"x"}},
			},
			want: map[string][]string{"x": nil},
		},
		{
			name: "empty job name is ignored",
			regs: []fsm.Registration{
				{Node: "n1", Add: []string{"", "x"}},
			},
			want: map[string][]string{"": nil, "x": {"n1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fsm.New(nil)
			for i, r := range tt.regs {
				register(t, f, uint64(i+1), r)
			}
			for job, want := range tt.want {
				got := f.Registered(job)
				if want == nil {
					if len(got) != 0 {
						t.Errorf("Registered(%q) = %q, want none", job, got)
					}
					continue
				}
				if !slices.Equal(got, want) {
					t.Errorf("Registered(%q) = %q, want %q", job, got, want)
				}
			}
			if n := uint64(len(tt.regs)); f.AppliedIndex() != n {
				t.Errorf("AppliedIndex() = %d, want %d", f.AppliedIndex(), n)
			}
		})
	}
}

// TestRegisteredSliceIsStable checks the copy-on-write promise: a slice
// returned by Registered is not changed by later registrations.
func TestRegisteredSliceIsStable(t *testing.T) {
	f := fsm.New(nil)
	register(t, f, 1, fsm.Registration{Node: "n2", Add: []string{"x"}})
	register(t, f, 2, fsm.Registration{Node: "n4", Add: []string{"x"}})
	before := f.Registered("x")
	snapshot := slices.Clone(before)

	register(t, f, 3, fsm.Registration{Node: "n1", Add: []string{"x"}})
	register(t, f, 4, fsm.Registration{Node: "n4", Remove: []string{"x"}})
	register(t, f, 5, fsm.Registration{Node: "n3", Add: []string{"x"}})

	if !slices.Equal(before, snapshot) {
		t.Errorf("earlier Registered slice changed to %q, was %q", before, snapshot)
	}
	if got, want := f.Registered("x"), []string{"n1", "n2", "n3"}; !slices.Equal(got, want) {
		t.Errorf("Registered(x) = %q, want %q", got, want)
	}
}

// TestRegistrationDoesNotTouchGrants checks that registering and resetting
// jobs leaves the grant state alone.
func TestRegistrationDoesNotTouchGrants(t *testing.T) {
	f := fsm.New(nil)
	applyClaims(t, f, 1, at(1), "n1", claim("x", 1))
	before := f.Jobs()
	register(t, f, 2, fsm.Registration{Node: "n1", Add: []string{"x"}})
	register(t, f, 3, fsm.Registration{Node: "n1", Reset: true})
	if got := f.Jobs(); len(got) != 1 || got["x"] != before["x"] {
		t.Errorf("Jobs() = %+v after registrations, want %+v", got, before)
	}
}
