package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestFollowerFloor checks the sentence that adds a follower's two round
// trips to the leader's two bare commits: it must name the sum, and say
// the aim is missed exactly when that sum is above aimEtcdP50 × etcd's p50.
func TestFollowerFloor(t *testing.T) {
	for _, tc := range []struct {
		name            string
		two, rtt, etcd  float64
		want, notWanted string
	}{
		// 0.895 + 2 × 0.018 = 0.931 ms, 0.71× of 1.31 ms: above 0.7×.
		{"floor misses", 0.895, 0.018, 1.31, "0.931 ms in all, 0.71× etcd's pair, which already misses the aim", "is left under the aim"},
		// 0.800 + 2 × 0.018 = 0.836 ms, 0.64× of 1.31 ms: 0.081 ms left.
		{"floor within", 0.800, 0.018, 1.31, "0.836 ms in all, 0.64× etcd's pair: 0.081 ms is left under the aim", "already misses"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &report{phys: physResult{rttP50: rep{tc.rtt}}}
			gb := &goBench{metrics: map[string]map[string]rep{
				"LockUnlockUncontended/follower": {"pair/raft-pair": rep{1.14}},
			}}
			var b strings.Builder
			r.writeFollowerFloor(func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }, gb, tc.two, tc.etcd)
			got := b.String()
			if !strings.Contains(got, tc.want) || strings.Contains(got, tc.notWanted) {
				t.Fatalf("got %q, want it to contain %q and not %q", got, tc.want, tc.notWanted)
			}
			if !strings.Contains(got, "took 1.14× two bare commits") {
				t.Fatalf("got %q, want the Go benchmarks' follower ratio", got)
			}
		})
	}
}
