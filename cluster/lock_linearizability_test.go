package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/transport"
)

// ---------------------------------------------------------------------------
// Fault injection on the Raft/RPC port.

// errPartitioned is what a dial across an injected partition returns.
var errPartitioned = errors.New("faultnet: connection refused (injected partition)")

// faultNet sits between the nodes' Raft/RPC ports: every node listens
// through faultNet.listener and dials through faultNet.dialer. It can cut
// chosen node pairs apart (dials between them are refused and their live
// connections closed, in both directions) and heal them. Gossip is not
// affected, so this models a partition of the Raft port only.
type faultNet struct {
	mu sync.Mutex
	// addrs maps each node's advertised Raft address to its index.
	addrs map[string]int
	// gossipAddrs maps each node's gossip address to its index, for the
	// nodes whose gossip also goes through the fault net (heal_test.go).
	gossipAddrs map[string]int
	// origin maps the local address of each dialed connection to the
	// node that dialed it, so the accepting side can tell who is calling.
	origin  map[string]int
	blocked map[[2]int]bool
	conns   map[*faultConn]struct{}
	// loseReply counts, per node, RPCs whose reply is still to be lost.
	loseReply map[int]int
	// lossPercent, if positive, loses that share of all RPC replies.
	lossPercent atomic.Int32
	refused     atomic.Int64 // dials and accepts refused, for the test's checks
	cut         atomic.Int64 // live connections closed by a partition
	lost        atomic.Int64 // replies lost
}

func newFaultNet() *faultNet {
	return &faultNet{
		addrs:   make(map[string]int),
		origin:  make(map[string]int),
		blocked: make(map[[2]int]bool),
		conns:   make(map[*faultConn]struct{}),

		loseReply: make(map[int]int),
	}
}

// errReplyLost is what a caller whose reply was dropped sees.
var errReplyLost = errors.New("faultnet: connection reset (injected lost reply)")

// loseNextReply makes the next RPC node from sends lose its reply: the
// request reaches the far side and is served in full, but the caller's
// connection breaks as the answer arrives, as when a leader dies right
// after committing an entry. The caller cannot tell and retries.
func (f *faultNet) loseNextReply(from int) {
	f.mu.Lock()
	f.loseReply[from]++
	f.mu.Unlock()
}

func (f *faultNet) takeLoseReply(from int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.loseReply[from] == 0 {
		return false
	}
	f.loseReply[from]--
	return true
}

func pairOf(a, b int) [2]int {
	if a > b {
		a, b = b, a
	}
	return [2]int{a, b}
}

// configure makes node i of a clustertest cluster listen and dial through
// the fault net. Use it from clustertest.Options.Configure.
func (f *faultNet) configure(t testing.TB, i int, c *cluster.Config) {
	ln, err := net.Listen("tcp", c.RaftAddr)
	if err != nil {
		t.Fatalf("listen on %s: %v", c.RaftAddr, err)
	}
	f.mu.Lock()
	f.addrs[c.RaftAddr] = i
	f.mu.Unlock()
	c.RaftListener = &faultListener{Listener: ln, fn: f, self: i}
	c.RaftDialer = &faultDialer{fn: f, self: i}
}

// block cuts a and b apart.
func (f *faultNet) block(a, b int) {
	f.mu.Lock()
	p := pairOf(a, b)
	f.blocked[p] = true
	var doomed []*faultConn
	for c := range f.conns {
		if peer := f.peerLocked(c); peer >= 0 && pairOf(c.self, peer) == p {
			doomed = append(doomed, c)
		}
	}
	f.mu.Unlock()
	for _, c := range doomed {
		f.cut.Add(1)
		c.Close()
	}
}

// isolate cuts node a from every other node.
func (f *faultNet) isolate(a, n int) {
	for b := range n {
		if b != a {
			f.block(a, b)
		}
	}
}

// heal removes every partition.
func (f *faultNet) heal() {
	f.mu.Lock()
	clear(f.blocked)
	f.mu.Unlock()
}

func (f *faultNet) peerLocked(c *faultConn) int {
	if c.peer >= 0 {
		return c.peer
	}
	if p, ok := f.origin[c.RemoteAddr().String()]; ok {
		return p
	}
	return -1
}

// track registers a new connection of node self, unless its peer is cut
// off, in which case it closes it and reports false. peer is -1 for an
// accepted connection, whose dialer is looked up by address.
func (f *faultNet) track(c net.Conn, self, peer int) (*faultConn, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if peer >= 0 {
		f.origin[c.LocalAddr().String()] = self
	} else if p, ok := f.origin[c.RemoteAddr().String()]; ok {
		peer = p
	}
	if peer >= 0 && f.blocked[pairOf(self, peer)] {
		f.refused.Add(1)
		c.Close()
		return nil, false
	}
	fc := &faultConn{Conn: c, fn: f, self: self, peer: peer, dialed: peer >= 0}
	f.conns[fc] = struct{}{}
	return fc, true
}

type faultConn struct {
	net.Conn
	fn         *faultNet
	self, peer int
	dialed     bool
	once       sync.Once
	// kind is the connection's first byte (transport.KindRaft or KindRPC)
	// once the dialer has sent it, 0 before.
	kind atomic.Int32
	// victim is set on an RPC connection whose next reply is to be lost.
	victim atomic.Bool
}

func (c *faultConn) Write(p []byte) (int, error) {
	if c.dialed && len(p) > 0 {
		if c.kind.Load() == 0 {
			c.kind.Store(int32(p[0]))
		} else if c.kind.Load() == int32(transport.KindRPC) && (c.fn.takeLoseReply(c.self) || rand.Int32N(100) < c.fn.lossPercent.Load()) {
			c.victim.Store(true)
		}
	}
	return c.Conn.Write(p)
}

func (c *faultConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.victim.Load() {
		c.fn.lost.Add(1)
		c.Close()
		return 0, errReplyLost
	}
	return n, err
}

func (c *faultConn) Close() error {
	c.once.Do(func() {
		c.fn.mu.Lock()
		delete(c.fn.conns, c)
		c.fn.mu.Unlock()
	})
	return c.Conn.Close()
}

type faultListener struct {
	net.Listener
	fn   *faultNet
	self int
}

func (l *faultListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if fc, ok := l.fn.track(c, l.self, -1); ok {
			return fc, nil
		}
	}
}

type faultDialer struct {
	fn   *faultNet
	self int
}

func (d *faultDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.fn.mu.Lock()
	peer, known := d.fn.addrs[addr]
	blocked := known && d.fn.blocked[pairOf(d.self, peer)]
	d.fn.mu.Unlock()
	if !known {
		peer = -1
	}
	if blocked {
		d.fn.refused.Add(1)
		return nil, &net.OpError{Op: "dial", Net: network, Err: errPartitioned}
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if !known {
		return c, nil
	}
	fc, ok := d.fn.track(c, d.self, peer)
	if !ok {
		return nil, &net.OpError{Op: "dial", Net: network, Err: errPartitioned}
	}
	return fc, nil
}

var _ transport.Dialer = (*faultDialer)(nil)

// TestFaultNetBlocksAndHeals checks the fault injector itself: a partition
// refuses new connections and closes live ones in both directions, and
// healing lets traffic through again.
func TestFaultNetBlocksAndHeals(t *testing.T) {
	f := newFaultNet()
	var lns []net.Listener
	var addrs []string
	for i := range 2 {
		cfg := cluster.Config{RaftAddr: "127.0.0.1:" + strconv.Itoa(clustertest.FreePorts(t, 1)[0])}
		f.configure(t, i, &cfg)
		lns = append(lns, cfg.RaftListener)
		addrs = append(addrs, cfg.RaftAddr)
		defer cfg.RaftListener.Close()
	}
	accepted := make(chan net.Conn, 4)
	var wg sync.WaitGroup
	for _, ln := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepted <- c
			}
		}()
	}
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
		wg.Wait()
	}()
	ctx := context.Background()
	d0 := &faultDialer{fn: f, self: 0}
	c, err := d0.DialContext(ctx, "tcp", addrs[1])
	if err != nil {
		t.Fatalf("dial before partition: %v", err)
	}
	defer c.Close()
	srv := <-accepted
	defer srv.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	f.block(0, 1)
	// Both ends of the live connection are closed.
	buf := make([]byte, 1)
	if _, err := c.Read(buf); err == nil {
		t.Fatal("read on the dialer's end succeeded across a partition")
	}
	_ = srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := srv.Read(buf); err == nil {
		t.Fatal("read on the accepting end succeeded across a partition")
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("accepting end was not closed by the partition")
	}
	// New dials are refused both ways.
	if _, err := d0.DialContext(ctx, "tcp", addrs[1]); !errors.Is(err, errPartitioned) {
		t.Fatalf("dial 0→1 across partition: %v, want refused", err)
	}
	d1 := &faultDialer{fn: f, self: 1}
	if _, err := d1.DialContext(ctx, "tcp", addrs[0]); !errors.Is(err, errPartitioned) {
		t.Fatalf("dial 1→0 across partition: %v, want refused", err)
	}
	f.heal()
	c2, err := d1.DialContext(ctx, "tcp", addrs[0])
	if err != nil {
		t.Fatalf("dial after heal: %v", err)
	}
	c2.Close()
	(<-accepted).Close()
}

// TestLockOpsRetriedAfterLostReply checks that every lock operation is
// answered as if it ran once when the reply to its first attempt is lost
// and propose retries it: the leader applies the entry twice, and the
// caller must get the first application's answer, not the repeat's.
func TestLockOpsRetriedAfterLostReply(t *testing.T) {
	fn := newFaultNet()
	c := clustertest.MakeCluster(t, 3, clustertest.Options{Configure: func(i int, cfg *cluster.Config) { fn.configure(t, i, cfg) }})
	leader := c.Leader(10 * time.Second)
	f, other := (leader+1)%3, (leader+2)%3
	n := c.Nodes[f] // a follower, so every operation is an RPC to the leader
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lose := func(what string, op func() error) error {
		t.Helper()
		before := fn.lost.Load()
		fn.loseNextReply(f)
		err := op()
		if fn.lost.Load() != before+1 {
			t.Fatalf("%s: the injected reply loss did not happen", what)
		}
		return err
	}

	var l *cluster.Lease
	err := lose("TryLock", func() (err error) {
		l, err = n.TryLock(ctx, "retried", time.Minute)
		return err
	})
	if err != nil {
		t.Fatalf("TryLock whose first reply was lost: %v", err)
	}
	if st, _ := cluster.State(c.Nodes[leader]).Lock("retried"); st.Token != l.Token() {
		t.Fatalf("TryLock returned token %d, the lock's token is %d", l.Token(), st.Token)
	}
	if err := lose("Renew", func() error { return l.Renew(ctx) }); err != nil {
		t.Fatalf("Renew whose first reply was lost: %v", err)
	}
	if isClosed(l.Done()) {
		t.Fatal("lease lost after retried TryLock and Renew")
	}

	// The release is applied twice; the first application freed the lock,
	// so the Unlock succeeded and must say so.
	if err := lose("Unlock", func() error { return l.Unlock(ctx) }); err != nil {
		t.Fatalf("Unlock whose first reply was lost: %v, want nil (this call released the lock)", err)
	}
	next, err := c.Nodes[other].TryLock(ctx, "retried", time.Minute)
	if err != nil {
		t.Fatalf("lock not free after the retried Unlock: %v", err)
	}

	// A queued Lock whose reply is lost keeps one place in the queue and
	// is served when the holder lets go.
	got := make(chan *cluster.Lease, 1)
	before := fn.lost.Load()
	fn.loseNextReply(f)
	go func() {
		w, err := n.Lock(ctx, "retried", time.Minute)
		if err != nil {
			t.Errorf("queued Lock whose first reply was lost: %v", err)
		}
		got <- w
	}()
	clustertest.Eventually(t, 10*time.Second, func() bool { return fn.lost.Load() == before+1 }, "the injected reply loss did not happen")
	clustertest.Eventually(t, 10*time.Second, func() bool { return queued(c.Nodes[leader], "retried") == 1 }, "waiter never queued")
	if err := next.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	w := <-got
	if w == nil {
		t.FailNow()
	}
	if st, _ := cluster.State(c.Nodes[leader]).Lock("retried"); st.Token != w.Token() || len(st.Waiters) != 0 {
		t.Fatalf("after handoff: %s, want the waiter (token %d) holding with nobody queued", lockState(c.Nodes[leader], "retried"), w.Token())
	}
	if err := w.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------
// Linearizability of Lock, TryLock and Unlock.

// The model is one lock register whose state is the lease holding it (0
// when free). Every acquire attempt has its own lease number, so a stale
// lease's Unlock can be told from its successor's.
type lkKind uint8

const (
	lkTryLock lkKind = iota
	lkLock
	lkUnlock
	// lkWithdraw is the release a failed Lock/TryLock proposes for itself:
	// it may or may not have been applied.
	lkWithdraw
)

type lkInput struct {
	Kind  lkKind
	Lease int
}

type lkOutput uint8

const (
	lkOK lkOutput = iota
	lkLocked
	lkLost
	// lkUnknown is an operation that ended in a timeout, a propose error
	// or a shutdown: it may have taken effect, at any time after its call.
	lkUnknown
)

func (k lkKind) String() string {
	return [...]string{"TryLock", "Lock", "Unlock", "Withdraw"}[k]
}

func (o lkOutput) String() string {
	return [...]string{"ok", "ErrLocked", "ErrLeaseLost", "unknown"}[o]
}

var lockModel = (&porcupine.NondeterministicModel{
	Init: func() []interface{} { return []interface{}{0} },
	Step: func(state, input, output interface{}) []interface{} {
		s, in, out := state.(int), input.(lkInput), output.(lkOutput)
		one := func(ok bool, next int) []interface{} {
			if ok {
				return []interface{}{next}
			}
			return nil
		}
		switch in.Kind {
		case lkTryLock, lkLock:
			switch out {
			case lkOK:
				return one(s == 0, in.Lease)
			case lkLocked:
				return one(in.Kind == lkTryLock && s != 0, s)
			case lkUnknown:
				if s == 0 {
					return []interface{}{0, in.Lease}
				}
				return []interface{}{s}
			}
		case lkUnlock, lkWithdraw:
			switch out {
			case lkOK:
				return one(s == in.Lease, 0)
			case lkLost:
				return one(s != in.Lease, s)
			case lkUnknown:
				if s == in.Lease {
					return []interface{}{in.Lease, 0}
				}
				return []interface{}{s}
			}
		}
		return nil
	},
	Hash: func(state interface{}) uint64 { return uint64(state.(int)) * 0x9e3779b97f4a7c15 },
	DescribeOperation: func(input, output interface{}) string {
		in := input.(lkInput)
		return fmt.Sprintf("%s(L%d) → %s", in.Kind, in.Lease, output.(lkOutput))
	},
	DescribeState: func(state interface{}) string {
		if s := state.(int); s != 0 {
			return fmt.Sprintf("held by L%d", s)
		}
		return "free"
	},
}).ToModel()

// history records operations from many goroutines.
type history struct {
	start   time.Time
	clients int

	mu     sync.Mutex
	ops    []porcupine.Operation
	ghosts int
	counts map[string]int
}

func newHistory(clients int) *history {
	return &history{start: time.Now(), clients: clients, counts: make(map[string]int)}
}

func (h *history) now() int64 { return time.Since(h.start).Nanoseconds() }

// add records one finished operation. An unknown outcome is recorded as
// never returning, on a client row of its own so the visualization stays
// readable.
func (h *history) add(client int, in lkInput, call int64, out lkOutput) {
	ret := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counts[in.Kind.String()+"→"+out.String()]++
	if out == lkUnknown {
		ret = math.MaxInt64
		client = h.clients + h.ghosts
		h.ghosts++
	}
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
}

// lkRun is one randomized history against one lock name.
type lkRun struct {
	t       *testing.T
	nodes   []*cluster.Node
	dead    []atomic.Bool // per node: killed, its clients stop
	name    string
	h       *history
	leaseID atomic.Int64
	stop    chan struct{}
	wg      sync.WaitGroup
}

const (
	lkClients = 6
	lkTTL     = time.Minute // no lease may expire during a run
	lkOpLimit = time.Second
)

func newLkRun(t *testing.T, nodes []*cluster.Node, name string) *lkRun {
	nodes = append([]*cluster.Node(nil), nodes...)
	return &lkRun{t: t, nodes: nodes, dead: make([]atomic.Bool, len(nodes)), name: name, h: newHistory(lkClients), stop: make(chan struct{})}
}

func (r *lkRun) start(seed uint64) {
	for c := range lkClients {
		r.wg.Add(1)
		go r.client(c, c%len(r.nodes), rand.New(rand.NewPCG(seed, uint64(c))))
	}
}

func (r *lkRun) finish() {
	close(r.stop)
	r.wg.Wait()
}

type heldLease struct {
	l  *cluster.Lease
	id int
}

func (r *lkRun) client(id, nodeIdx int, rng *rand.Rand) {
	defer r.wg.Done()
	n := r.nodes[nodeIdx]
	var held *heldLease
	var stale []heldLease
	for {
		select {
		case <-r.stop:
			if held != nil && !r.dead[nodeIdx].Load() {
				r.unlock(id, *held)
			}
			return
		default:
		}
		if r.dead[nodeIdx].Load() {
			return
		}
		p := rng.IntN(100)
		switch {
		case len(stale) > 0 && p < 10:
			r.unlock(id, stale[rng.IntN(len(stale))])
		case held != nil:
			r.unlock(id, *held)
			stale = append(stale, *held)
			if len(stale) > 3 {
				stale = stale[1:]
			}
			held = nil
		default:
			kind := lkTryLock
			if p < 40 {
				kind = lkLock
			}
			held = r.acquire(id, n, kind)
		}
	}
}

func (r *lkRun) acquire(client int, n *cluster.Node, kind lkKind) *heldLease {
	lease := int(r.leaseID.Add(1))
	in := lkInput{Kind: kind, Lease: lease}
	ctx, cancel := context.WithTimeout(context.Background(), lkOpLimit)
	defer cancel()
	call := r.h.now()
	var l *cluster.Lease
	var err error
	if kind == lkTryLock {
		l, err = n.TryLock(ctx, r.name, lkTTL)
	} else {
		l, err = n.Lock(ctx, r.name, lkTTL)
	}
	switch {
	case err == nil:
		r.h.add(client, in, call, lkOK)
		return &heldLease{l, lease}
	case errors.Is(err, cluster.ErrLocked):
		if kind == lkLock {
			r.t.Errorf("Lock returned ErrLocked: %v", err)
		}
		r.h.add(client, in, call, lkLocked)
	default:
		// The acquire may have been applied, and the withdrawal Lock
		// proposes on failure may or may not have been.
		r.h.add(client, in, call, lkUnknown)
		r.h.add(client, lkInput{Kind: lkWithdraw, Lease: lease}, call, lkUnknown)
	}
	return nil
}

func (r *lkRun) unlock(client int, hl heldLease) {
	ctx, cancel := context.WithTimeout(context.Background(), lkOpLimit)
	defer cancel()
	call := r.h.now()
	err := hl.l.Unlock(ctx)
	in := lkInput{Kind: lkUnlock, Lease: hl.id}
	switch {
	case err == nil:
		r.h.add(client, in, call, lkOK)
	case errors.Is(err, cluster.ErrLeaseLost):
		r.h.add(client, in, call, lkLost)
	default:
		r.h.add(client, in, call, lkUnknown)
	}
}

// check runs porcupine over the history, and on failure writes the
// visualization to a file and fails the test with its path.
func (r *lkRun) check(label string) {
	t := r.t
	t.Helper()
	r.h.mu.Lock()
	ops := append([]porcupine.Operation(nil), r.h.ops...)
	counts := fmt.Sprint(r.h.counts)
	r.h.mu.Unlock()
	begin := time.Now()
	res, info := porcupine.CheckOperationsVerbose(lockModel, ops, 30*time.Second)
	t.Logf("%s: %d operations %s, checked in %s: %s", label, len(ops), counts, time.Since(begin).Round(time.Millisecond), res)
	if res == porcupine.Ok {
		return
	}
	path := filepath.Join(t.TempDir(), "lock-history.html")
	if err := porcupine.VisualizePath(lockModel, info, path); err != nil {
		t.Errorf("write visualization: %v", err)
	}
	// t.TempDir is removed after the test; keep a copy that outlives it.
	if keep, err := os.CreateTemp("", "interlock-lock-history-*.html"); err == nil {
		if data, err := os.ReadFile(path); err == nil {
			_, _ = keep.Write(data)
		}
		keep.Close()
		path = keep.Name()
	}
	if res == porcupine.Illegal {
		t.Errorf("%s: history of %d operations is NOT linearizable; visualization: %s", label, len(ops), path)
	} else {
		t.Errorf("%s: linearizability check timed out (%s); visualization: %s", label, res, path)
	}
}

// okAcquires is the number of acquires that definitely succeeded.
func (r *lkRun) okAcquires() int {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	return r.h.counts["TryLock→ok"] + r.h.counts["Lock→ok"]
}

// definiteAfter counts operations called after t that returned a definite
// answer.
func (r *lkRun) definiteAfter(t int64) int {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	n := 0
	for _, op := range r.h.ops {
		if op.Call > t && op.Output.(lkOutput) != lkUnknown {
			n++
		}
	}
	return n
}

// linSeed returns the base seed: INTERLOCK_LIN_SEED if set, else random.
func linSeed(t *testing.T) uint64 {
	if v := os.Getenv("INTERLOCK_LIN_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("INTERLOCK_LIN_SEED=%q: %v", v, err)
		}
		return s
	}
	return rand.Uint64() % 1_000_000
}

// waitFor lets the history run for d. It times the fault schedule (when to
// inject, how long to hold, how long to run on); it never stands in for
// waiting on a condition.
func waitFor(d time.Duration) { <-time.After(d) }

// TestLockLinearizablePartitions runs randomized Lock/TryLock/Unlock
// histories from six clients on three nodes while the Raft/RPC network is
// partitioned (the leader isolated, a follower isolated, or one
// leader-follower link cut) and healed, or loses the replies of a share of
// the forwarded proposals (so they are retried and applied twice), and
// checks each history with porcupine.
func TestLockLinearizablePartitions(t *testing.T) {
	base := linSeed(t)
	t.Logf("base seed %d (set INTERLOCK_LIN_SEED to repeat)", base)
	fn := newFaultNet()
	c := clustertest.MakeCluster(t, 3, clustertest.Options{Configure: func(i int, cfg *cluster.Config) {
		fn.configure(t, i, cfg)
		cfg.ProposeTimeout = 2 * time.Second
		cfg.LeaveTimeout = time.Second
	}})
	c.Leader(10 * time.Second)
	kinds := []string{"isolate leader", "isolate follower", "cut leader-follower link", "lose 30% of RPC replies"}
	const runs = 8
	for run := range runs {
		seed := base + uint64(run)
		kind := kinds[run%len(kinds)]
		rng := rand.New(rand.NewPCG(seed, 0xfa017))
		leader := c.Leader(15 * time.Second)
		follower := (leader + 1 + rng.IntN(2)) % 3
		cutBefore := fn.cut.Load() + fn.refused.Load() + fn.lost.Load()

		r := newLkRun(t, c.Nodes, fmt.Sprintf("lin-part-%d", run))
		r.start(seed)
		waitFor(time.Duration(300+rng.IntN(500)) * time.Millisecond)
		switch run % len(kinds) {
		case 0:
			fn.isolate(leader, 3)
		case 1:
			fn.isolate(follower, 3)
		case 2:
			fn.block(leader, follower)
		case 3:
			fn.lossPercent.Store(30)
		}
		waitFor(time.Duration(800+rng.IntN(700)) * time.Millisecond)
		fn.heal()
		fn.lossPercent.Store(0)
		// Run on for a while once the cluster has recovered.
		c.Leader(15 * time.Second)
		waitFor(time.Duration(400+rng.IntN(400)) * time.Millisecond)
		r.finish()

		label := fmt.Sprintf("run %d (seed %d, %s: leader node%d, follower node%d)", run, seed, kind, leader, follower)
		if fn.cut.Load()+fn.refused.Load()+fn.lost.Load() == cutBefore {
			t.Errorf("%s: the fault refused, cut or lost nothing", label)
		}
		if r.okAcquires() < 3 {
			t.Errorf("%s: only %d acquires succeeded; the history exercises nothing", label, r.okAcquires())
		}
		r.check(label)
	}
}

// pickKillMoment returns as soon as n's state shows no lease or waiter of
// n on the lock, or after limit.
func pickKillMoment(n *cluster.Node, name string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		st, _ := cluster.State(n).Lock(name)
		involved := st.Node == n.Name()
		for _, w := range st.Waiters {
			involved = involved || w.Node == n.Name()
		}
		if !involved {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestLockLinearizableLeaderKill runs randomized histories while the leader
// is killed mid-history (its clients stop), each in a fresh cluster.
func TestLockLinearizableLeaderKill(t *testing.T) {
	base := linSeed(t) + 100
	t.Logf("base seed %d (set INTERLOCK_LIN_SEED to repeat)", base-100)
	const runs = 5
	for run := range runs {
		seed := base + uint64(run)
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			c := clustertest.MakeCluster(t, 3, clustertest.Options{Configure: func(i int, cfg *cluster.Config) {
				cfg.ProposeTimeout = 2 * time.Second
				cfg.LeaveTimeout = time.Second
			}})
			// Tear down by crashing too: a graceful leave without the dead
			// node's vote only waits out LeaveTimeout.
			t.Cleanup(func() {
				for _, n := range c.Nodes {
					if n != nil {
						clustertest.Kill(n)
					}
				}
			})
			rng := rand.New(rand.NewPCG(seed, 0xdead))
			leader := c.Leader(10 * time.Second)
			r := newLkRun(t, c.Nodes, "lin-kill")
			r.start(seed)
			waitFor(time.Duration(300+rng.IntN(600)) * time.Millisecond)
			// A crashed node's holding or queue place keeps the lock for the
			// whole TTL, which would leave the rest of the history with
			// nothing to check; prefer, for up to a second, a moment when
			// the leader's clients neither hold the lock nor wait for it.
			pickKillMoment(c.Nodes[leader], r.name, time.Second)
			r.dead[leader].Store(true)
			if err := clustertest.Kill(c.Nodes[leader]); err != nil {
				t.Logf("kill: %v", err)
			}
			c.Nodes[leader] = nil
			killedAt := r.h.now()
			// Run on for a while once the survivors have elected a leader.
			c.Leader(15 * time.Second)
			waitFor(time.Duration(700+rng.IntN(500)) * time.Millisecond)
			r.finish()
			if after := r.definiteAfter(killedAt); after == 0 {
				t.Errorf("no operation called after the kill returned a definite answer")
			}
			if r.okAcquires() < 3 {
				t.Errorf("only %d acquires succeeded; the history exercises nothing", r.okAcquires())
			}
			r.check(fmt.Sprintf("seed %d, killed leader node%d", seed, leader))
		})
	}
}
