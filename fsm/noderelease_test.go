package fsm_test

import (
	"testing"

	"github.com/interlockraft/interlock/fsm"
)

// A node release with a keep list frees the leaving node's run leases
// except those of the kept jobs, which stay until their TTL: the node could
// not stop those runs before it left.
func TestNodeReleaseKeepsListedRunLeases(t *testing.T) {
	f := fsm.New(nil)
	ttl := 3 * sec
	for i, job := range []string{"stopped", "overran"} {
		if o := applyClaims(t, f, uint64(1+i), at(1), "a", exclusive(job, 1, ttl)).Outcomes[0]; !o.Granted() {
			t.Fatalf("claim %s: %v", job, o.Reason)
		}
	}
	if out := apply(t, f, 3, at(1)+sec/2, fsm.EncodeNodeReleaseKeeping("a", []string{"overran"})); out != nil {
		t.Fatalf("node release returned %v", out)
	}
	if o := applyClaims(t, f, 4, at(2), "b", exclusive("stopped", 2, ttl)).Outcomes[0]; !o.Granted() {
		t.Fatalf("claim of a released job = %v, want granted", o.Reason)
	}
	if o := applyClaims(t, f, 5, at(2), "b", exclusive("overran", 2, ttl)).Outcomes[0]; o.Reason != fsm.ReasonBusy {
		t.Fatalf("claim of a kept job before its lease expired = %v, want busy", o.Reason)
	}
	if o := applyClaims(t, f, 6, at(1)+ttl, "b", exclusive("overran", 4, ttl)).Outcomes[0]; !o.Granted() {
		t.Fatalf("claim of a kept job after its lease expired = %v, want granted", o.Reason)
	}
}

// A release without a keep list encodes as it always did, so entries
// written before keep lists existed still decode and release everything.
func TestNodeReleaseWithoutKeepListIsTheOldEncoding(t *testing.T) {
	if a, b := fsm.EncodeNodeRelease("a"), fsm.EncodeNodeReleaseKeeping("a", nil); string(a) != string(b) {
		t.Fatalf("encodings differ: %x and %x", a, b)
	}
	f := fsm.New(nil)
	applyClaims(t, f, 1, at(1), "a", exclusive("j", 1, 3*sec))
	apply(t, f, 2, at(1), fsm.EncodeNodeRelease("a"))
	if o := applyClaims(t, f, 3, at(2), "b", exclusive("j", 2, 3*sec)).Outcomes[0]; !o.Granted() {
		t.Fatalf("claim after an old-style release = %v, want granted", o.Reason)
	}
}
