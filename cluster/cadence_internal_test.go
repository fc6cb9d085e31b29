package cluster

import (
	"testing"
	"time"
)

// TestLeaderHeartbeatTimeout checks the leader's HeartbeatTimeout: twice
// the followers', unless its heartbeats (at most a fifth of it apart)
// would then come more than half a lease apart.
func TestLeaderHeartbeatTimeout(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name             string
		heartbeat, lease time.Duration
		want             time.Duration
	}{
		{"defaults", DefaultHeartbeatTimeout, DefaultLeaderLeaseTimeout, 800 * ms},
		{"raft's defaults", time.Second, 500 * ms, 1250 * ms},
		{"short lease keeps the followers' cadence", 400 * ms, 160 * ms, 400 * ms},
		{"lease between", 400 * ms, 300 * ms, 750 * ms},
		{"slow network", 2 * time.Second, 2 * time.Second, 4 * time.Second},
	}
	for _, tt := range tests {
		c := Config{HeartbeatTimeout: tt.heartbeat, LeaderLeaseTimeout: tt.lease}
		got := leaderHeartbeatTimeout(c)
		if got != tt.want {
			t.Errorf("%s: leaderHeartbeatTimeout(heartbeat %s, lease %s) = %s, want %s", tt.name, tt.heartbeat, tt.lease, got, tt.want)
		}
		if got/5 > tt.lease/2 && got != tt.heartbeat {
			t.Errorf("%s: heartbeats up to %s apart against a %s lease", tt.name, got/5, tt.lease)
		}
	}
}
