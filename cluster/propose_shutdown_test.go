package cluster_test

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/transport"
)

// silencingDialer is a node's RaftDialer. Once silence names an address,
// every RPC request this node sends there is swallowed: the connection
// stays open and nothing comes back, as from a leader that is frozen or
// whose network dropped the packets. Raft's own connections pass. Its
// methods are safe for concurrent use.
type silencingDialer struct {
	d         net.Dialer
	target    atomic.Pointer[string]
	swallowed atomic.Int32
}

func (d *silencingDialer) silence(addr string) { d.target.Store(&addr) }

func (d *silencingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := d.d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &silencedConn{Conn: conn, d: d, addr: addr}, nil
}

type silencedConn struct {
	net.Conn
	d    *silencingDialer
	addr string
	kind atomic.Int32 // the kind byte, the first one written; 0 before
}

func (c *silencedConn) Write(b []byte) (int, error) {
	if len(b) > 0 && c.kind.CompareAndSwap(0, int32(b[0])) {
		return c.Conn.Write(b) // the kind byte itself, so the peer's mux keeps the connection
	}
	if t := c.d.target.Load(); t != nil && *t == c.addr && c.kind.Load() == int32(transport.KindRPC) {
		c.d.swallowed.Add(1)
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// TestStopWithForwardInFlight stops a follower while a command it
// forwarded waits on a leader that never answers, with a ProposeTimeout of
// a minute. Kill must return at once and Shutdown within its LeaveTimeout
// bounds: the forward belongs to the node's lifetime, not to the
// ProposeTimeout.
func TestStopWithForwardInFlight(t *testing.T) {
	const proposeTimeout = time.Minute
	tests := []struct {
		name string
		stop func(*cluster.Node) error
		// within is far below proposeTimeout. Shutdown waits up to a
		// LeaveTimeout (1 s here) to release the node's leases, another to
		// leave Raft, both through the silent leader, and up to one more
		// to leave gossip.
		within time.Duration
	}{
		{"Kill", clustertest.Kill, 5 * time.Second},
		{"Shutdown", func(n *cluster.Node) error { return n.Shutdown(context.Background()) }, 15 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dialers := make([]*silencingDialer, 3)
			c := clustertest.MakeCluster(t, 3, clustertest.Options{Configure: func(i int, cfg *cluster.Config) {
				dialers[i] = &silencingDialer{}
				cfg.RaftDialer = dialers[i]
				cfg.ProposeTimeout = proposeTimeout
				cfg.LeaveTimeout = time.Second
			}})
			li := c.Leader(10 * time.Second)
			fi := (li + 1) % 3
			f := c.Nodes[fi]
			dialers[fi].silence(c.Nodes[li].RaftAddr())

			proposed := make(chan error, 1)
			go func() {
				proposed <- cluster.Plumbing(f).Register(context.Background(), []string{"never-answered"}, nil)
			}()
			clustertest.Eventually(t, 10*time.Second, func() bool { return dialers[fi].swallowed.Load() > 0 },
				"%s never forwarded the registration to the leader", f.Name())

			start := time.Now()
			stopped := make(chan error, 1)
			go func() { stopped <- tt.stop(f) }()
			select {
			case err := <-stopped:
				t.Logf("%s returned %v after %s", tt.name, err, time.Since(start).Round(time.Millisecond))
			case <-time.After(tt.within):
				t.Fatalf("%s did not return within %s with a forward in flight to a leader that never answers (ProposeTimeout %s)", tt.name, tt.within, proposeTimeout)
			}
			select {
			case err := <-proposed:
				if !errors.Is(err, cluster.ErrShutdown) {
					t.Errorf("the in-flight Register returned %v, want ErrShutdown", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the in-flight Register did not return after the node stopped")
			}
			dialers[fi].silence("")
		})
	}
}
