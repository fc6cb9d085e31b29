package cluster_test

import (
	"context"
	"encoding/binary"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/fsm"
	"github.com/interlockraft/interlock/transport"
)

// outcomeUnknownCode is the wire code a leader answers with when it cannot
// tell whether a command was applied (cluster's codeOutcomeUnknown).
const outcomeUnknownCode = 3

// replyRewriter wraps a node's Raft/RPC listener. While armed, it replaces
// the next successful RPC replies the node sends with an unknown-outcome
// error, after the node has applied the command: the follower sees exactly
// what a leader whose deadline passed at the last moment would send. Its
// methods are safe for concurrent use.
type replyRewriter struct {
	net.Listener
	pending  atomic.Int32 // replies still to replace
	replaced atomic.Int32
}

// arm makes the rewriter replace the next n successful replies, and
// restarts the count of replaced ones.
func (r *replyRewriter) arm(n int32) {
	r.replaced.Store(0)
	r.pending.Store(n)
}

// disarm stops replacing replies and returns how many it replaced since
// arm.
func (r *replyRewriter) disarm() int32 {
	r.pending.Store(0)
	return r.replaced.Load()
}

func (r *replyRewriter) Accept() (net.Conn, error) {
	conn, err := r.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &rewriteConn{Conn: conn, r: r}, nil
}

type rewriteConn struct {
	net.Conn
	r    *replyRewriter
	kind atomic.Int32 // the connection's kind byte, once read; 0 before
}

func (c *rewriteConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.kind.CompareAndSwap(0, int32(p[0]))
	}
	return n, err
}

// Write replaces a whole success frame (status 0, length, body) with an
// error frame (status 1, length, code, message). The RPC server flushes
// each small reply with one Write.
func (c *rewriteConn) Write(b []byte) (int, error) {
	if c.kind.Load() != int32(transport.KindRPC) || len(b) < 2 || b[0] != 0 {
		return c.Conn.Write(b)
	}
	size, k := binary.Uvarint(b[1:])
	if k <= 0 || uint64(len(b)-1-k) != size {
		return c.Conn.Write(b)
	}
	if c.r.pending.Add(-1) < 0 {
		c.r.pending.Add(1)
		return c.Conn.Write(b)
	}
	c.r.replaced.Add(1)
	body := binary.BigEndian.AppendUint16(nil, outcomeUnknownCode)
	body = append(body, "propose command: context deadline exceeded (injected after apply)"...)
	frame := binary.AppendUvarint([]byte{1}, uint64(len(body)))
	frame = append(frame, body...)
	if _, err := c.Conn.Write(frame); err != nil {
		return 0, err
	}
	return len(b), nil
}

// TestForwardRetriesUnknownOutcome has the leader apply each kind of
// command a follower forwards and then answer with an unknown-outcome
// error instead of the result, once. The follower must retry rather than
// report a refusal, and the retry must get the answer the first attempt
// earned: every command kind tolerates being applied twice.
func TestForwardRetriesUnknownOutcome(t *testing.T) {
	rewriters := make([]*replyRewriter, 3)
	c := clustertest.MakeCluster(t, 3, clustertest.Options{Configure: func(i int, cfg *cluster.Config) {
		ln, err := net.Listen("tcp", cfg.RaftAddr)
		if err != nil {
			t.Fatal(err)
		}
		rewriters[i] = &replyRewriter{Listener: ln}
		cfg.RaftListener = rewriters[i]
	}})
	li := c.Leader(10 * time.Second)
	leader, f := c.Nodes[li], c.Nodes[(li+1)%3]
	rw := rewriters[li]

	// injected runs op on the follower with the leader's next reply
	// replaced, and checks that the replacement happened and op succeeded.
	injected := func(t *testing.T, op func(ctx context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		rw.arm(1)
		err := op(ctx)
		if got := rw.disarm(); got != 1 {
			t.Fatalf("the leader's reply was replaced %d times, want 1 (is the follower still forwarding to it?)", got)
		}
		if err != nil {
			t.Fatalf("the follower reported %v after the leader answered with an unknown outcome; want a retry that succeeds", err)
		}
	}
	claim := func(job string, exclusive bool) fsm.Claim {
		now := time.Now().UnixNano()
		c := fsm.Claim{Job: job, Tick: 1, At: now, Deadline: now + int64(10*time.Second)}
		if exclusive {
			c.Exclusive, c.LeaseTTL = true, int64(10*time.Second)
		}
		return c
	}

	t.Run("claim", func(t *testing.T) {
		var res *fsm.ClaimResult
		injected(t, func(ctx context.Context) (err error) {
			res, err = cluster.Plumbing(f).Claim(ctx, []fsm.Claim{claim("retry-claim", false)}, true)
			return err
		})
		st, ok := cluster.Plumbing(leader).LastGrant("retry-claim")
		o := res.Outcomes[0]
		if !ok || !o.Granted() || o.Token != st.Token || st.Holder != f.Name() {
			t.Fatalf("retried claim answered %+v; the state machine holds %+v: want the original grant", o, st)
		}
	})
	t.Run("register", func(t *testing.T) {
		injected(t, func(ctx context.Context) error { return cluster.Plumbing(f).Register(ctx, []string{"retry-job"}, nil) })
		if got := cluster.State(leader).Registered("retry-job"); !slices.Contains(got, f.Name()) {
			t.Fatalf("retry-job registered by %v, want %s among them", got, f.Name())
		}
	})
	t.Run("run lease renewal", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := cluster.Plumbing(f).Claim(ctx, []fsm.Claim{claim("retry-run", true)}, true)
		if err != nil || !res.Outcomes[0].Granted() {
			t.Fatalf("exclusive claim: %+v, %v", res, err)
		}
		var held []bool
		injected(t, func(ctx context.Context) (err error) {
			held, err = cluster.Plumbing(f).UpdateRuns(ctx, []fsm.RunRef{{Job: "retry-run", Tick: 1}}, nil)
			return err
		})
		if !slices.Equal(held, []bool{true}) {
			t.Fatalf("retried renewal answered %v, want [true]", held)
		}
	})
	t.Run("lock, renew, unlock", func(t *testing.T) {
		var l *cluster.Lease
		injected(t, func(ctx context.Context) (err error) {
			l, err = f.Lock(ctx, "retry-lock", 10*time.Second)
			return err
		})
		if st, ok := cluster.State(leader).Lock("retry-lock"); !ok || st.Token != l.Token() || st.Node != f.Name() {
			t.Fatalf("retried Lock got token %d; the state machine holds %+v", l.Token(), st)
		}
		injected(t, func(ctx context.Context) error { return l.Renew(ctx) })
		// The release's call ID makes the retry answer as the first
		// attempt did, although the lock is already free.
		injected(t, func(ctx context.Context) error { return l.Unlock(ctx) })
		if st, ok := cluster.State(leader).Lock("retry-lock"); ok {
			t.Fatalf("lock still held after Unlock: %+v", st)
		}
	})
}
