package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
)

// TestLockRejectsBadArguments checks that Lock and TryLock refuse unusable
// arguments at once with ErrInvalidLock, not ErrInvalidConfig, and name
// the argument. The arguments are checked before the node is used, so a
// zero Node is enough.
func TestLockRejectsBadArguments(t *testing.T) {
	tests := []struct {
		name     string
		lock     string
		ttl      time.Duration
		mentions string
	}{
		{"empty name", "", time.Second, "lock name is empty"},
		{"zero ttl", "l", 0, "ttl is 0s"},
		{"negative ttl", "l", -time.Second, "ttl is -1s"},
	}
	n := &cluster.Node{}
	for _, tt := range tests {
		for _, call := range []struct {
			fn   string
			lock func(context.Context, string, time.Duration, ...cluster.LockOption) (*cluster.Lease, error)
		}{{"Lock", n.Lock}, {"TryLock", n.TryLock}} {
			t.Run(call.fn+"/"+tt.name, func(t *testing.T) {
				l, err := call.lock(context.Background(), tt.lock, tt.ttl)
				if l != nil || !errors.Is(err, cluster.ErrInvalidLock) || errors.Is(err, cluster.ErrInvalidConfig) {
					t.Fatalf("%s = %v, %v; want only ErrInvalidLock", call.fn, l, err)
				}
				if !strings.Contains(err.Error(), tt.mentions) {
					t.Errorf("error %q does not say %q", err, tt.mentions)
				}
			})
		}
	}
}
