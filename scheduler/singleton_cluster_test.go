package scheduler_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/scheduler"
)

// holders tracks which replicas are inside a Singleton's Func, and the
// most that ever were at once.
type holders struct {
	mu      sync.Mutex
	in      map[int]uint64 // node index → token, while inside Func
	loops   map[int]int    // node index → loops done in Func
	most    int
	starts  []holding
	overlap []string
}

type holding struct {
	node  int
	token uint64
	at    time.Time
}

func newHolders() *holders { return &holders{in: map[int]uint64{}, loops: map[int]int{}} }

func (h *holders) enter(node int, token uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.in[node] = token
	h.most = max(h.most, len(h.in))
	h.starts = append(h.starts, holding{node, token, time.Now()})
}

func (h *holders) exit(node int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.in, node)
}

// current returns the one replica inside Func, if exactly one is.
func (h *holders) current() (node int, token uint64, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.in) != 1 {
		return -1, 0, false
	}
	for n, tok := range h.in {
		return n, tok, true
	}
	return -1, 0, false
}

// runSingletons runs a Singleton named "consumer" on every node of c, whose
// Func works in a loop until its context ends, recorded in h. returned[i]
// is closed when node i's Run returned; the cleanup stops them all and
// checks that each Run returned nil.
func runSingletons(t *testing.T, c *clustertest.Cluster, ttl time.Duration, h *holders) (returned []chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make([]error, len(c.Nodes))
	returned = make([]chan struct{}, len(c.Nodes))
	for i, n := range c.Nodes {
		returned[i] = make(chan struct{})
		s := &scheduler.Singleton{Name: "consumer", Cluster: n, TTL: ttl, RestartDelay: 100 * time.Millisecond, Func: func(ctx context.Context, token uint64) error {
			h.enter(i, token)
			defer h.exit(i)
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-tick.C:
					h.mu.Lock()
					h.loops[i]++
					h.mu.Unlock()
				}
			}
		}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(returned[i])
			errs[i] = s.Run(ctx)
		}()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("node %d: Run: %v", i, err)
			}
		}
	})
	return returned
}

// firstHolder waits until one replica holds the singleton and has worked
// through several lease renewals (every TTL/3), and checks that it was the
// only one to start.
func firstHolder(t *testing.T, h *holders, ttl time.Duration) (node int, token uint64) {
	t.Helper()
	clustertest.Eventually(t, 20*time.Second, func() bool {
		var ok bool
		node, token, ok = h.current()
		return ok
	}, "no replica started the singleton")
	clustertest.Eventually(t, 20*time.Second, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.loops[node] >= 2*int(ttl/(10*time.Millisecond))
	}, "the holder stopped working")
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.most != 1 || len(h.starts) != 1 {
		t.Errorf("while one replica held the singleton: %d ran at once, %d starts; want 1 and 1", h.most, len(h.starts))
	}
	return node, token
}

// takeover waits up to bound for a replica other than old to hold the
// singleton, and checks its token is above oldToken and that no two ever
// ran at once.
func takeover(t *testing.T, h *holders, old int, oldToken uint64, bound time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	var next int
	var token uint64
	clustertest.Eventually(t, bound, func() bool {
		var ok bool
		next, token, ok = h.current()
		return ok && next != old
	}, "no other replica took over within %s", bound)
	took := time.Since(began)
	t.Logf("node %d took over %s after node %d stopped", next, took.Round(time.Millisecond), old)
	if token <= oldToken {
		t.Errorf("the new holder got token %d; want one above the old holder's %d", token, oldToken)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.most != 1 {
		t.Errorf("%d replicas ran the singleton at once; want at most 1", h.most)
	}
	return took
}

// TestSingletonOnThreeNodes checks that a Singleton run by every replica of
// a three-node cluster runs on exactly one of them, and that when that
// replica crashes another takes over within a bounded time, with a higher
// fencing token, while the crashed replica's Run returns.
func TestSingletonOnThreeNodes(t *testing.T) {
	const ttl = time.Second
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	h := newHolders()
	returned := runSingletons(t, c, ttl, h)
	holder, token := firstHolder(t, h, ttl)
	if err := clustertest.Kill(c.Nodes[holder]); err != nil {
		t.Fatalf("kill node %d: %v", holder, err)
	}
	// TTL, an election, and slack for -race on a busy machine.
	takeover(t, h, holder, token, 15*time.Second)
	select {
	case <-returned[holder]:
	case <-time.After(10 * time.Second):
		t.Fatal("the crashed replica's Run did not return")
	}
}

// TestSingletonGracefulHandover checks that a holder's graceful Shutdown
// releases the singleton at once: another replica takes over well before
// the lease's TTL, which is how long a crash costs.
func TestSingletonGracefulHandover(t *testing.T) {
	const ttl = 6 * time.Second
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	h := newHolders()
	returned := runSingletons(t, c, ttl, h)
	holder, token := firstHolder(t, h, ttl)
	stopped := make(chan error, 1)
	go func() { stopped <- c.Nodes[holder].Shutdown(context.Background()) }()
	defer func() {
		if err := <-stopped; err != nil {
			t.Errorf("shutdown of node %d: %v", holder, err)
		}
	}()
	if took := takeover(t, h, holder, token, 15*time.Second); took >= ttl/2 {
		t.Errorf("takeover after a graceful shutdown took %s; want well under the TTL (%s): the lock should be released, not left to expire", took, ttl)
	}
	select {
	case <-returned[holder]:
	case <-time.After(10 * time.Second):
		t.Fatal("the stopped replica's Run did not return")
	}
}

// TestSingletonOnStoppedNode checks that Run refuses a node that is shut
// down, with an error wrapping cluster.ErrShutdown.
func TestSingletonOnStoppedNode(t *testing.T) {
	c := clustertest.MakeCluster(t, 1, clustertest.Options{})
	n := c.Nodes[0]
	c.Stop(0)
	s := &scheduler.Singleton{Name: "s", Cluster: n, Func: func(context.Context, uint64) error { return nil }}
	if err := s.Run(context.Background()); !errors.Is(err, cluster.ErrShutdown) {
		t.Errorf("Run on a stopped node: %v; want an error wrapping cluster.ErrShutdown", err)
	}
}
