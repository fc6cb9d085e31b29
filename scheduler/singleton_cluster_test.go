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
	most    int
	starts  []holding
	overlap []string
}

type holding struct {
	node  int
	token uint64
	at    time.Time
}

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

// TestSingletonOnThreeNodes checks that a Singleton run by every replica of
// a three-node cluster runs on exactly one of them, and that when that
// replica crashes another takes over within a bounded time, with a higher
// fencing token, while the crashed replica's Run returns.
func TestSingletonOnThreeNodes(t *testing.T) {
	const ttl = time.Second
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	h := &holders{in: map[int]uint64{}}
	var ticks sync.Map // node index → *int, loops done while holding
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	returned := make([]chan struct{}, 3)
	for i, n := range c.Nodes {
		returned[i] = make(chan struct{})
		s := &scheduler.Singleton{Name: "consumer", Cluster: n, TTL: ttl, RestartDelay: 100 * time.Millisecond, Func: func(ctx context.Context, token uint64) error {
			h.enter(i, token)
			defer h.exit(i)
			loops := new(int)
			ticks.Store(i, loops)
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-tick.C:
					h.mu.Lock()
					*loops++
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

	var holder int
	var token uint64
	clustertest.Eventually(t, 20*time.Second, func() bool {
		var ok bool
		holder, token, ok = h.current()
		return ok
	}, "no replica started the singleton")
	// Let the holder work through several lease renewals (every TTL/3).
	clustertest.Eventually(t, 20*time.Second, func() bool {
		v, _ := ticks.Load(holder)
		h.mu.Lock()
		defer h.mu.Unlock()
		return *(v.(*int)) >= 2*int(ttl/(10*time.Millisecond))
	}, "the holder stopped working")
	h.mu.Lock()
	if h.most != 1 || len(h.starts) != 1 {
		t.Errorf("while one replica held the singleton: %d ran at once, %d starts; want 1 and 1", h.most, len(h.starts))
	}
	h.mu.Unlock()

	killed := time.Now()
	if err := clustertest.Kill(c.Nodes[holder]); err != nil {
		t.Fatalf("kill node %d: %v", holder, err)
	}
	select {
	case <-returned[holder]:
	case <-time.After(10 * time.Second):
		t.Fatal("the crashed replica's Run did not return")
	}
	var next int
	var nextToken uint64
	const bound = 15 * time.Second // TTL, an election, and slack for -race on a busy machine
	clustertest.Eventually(t, bound, func() bool {
		var ok bool
		next, nextToken, ok = h.current()
		return ok && next != holder
	}, "no other replica took over within %s of the crash", bound)
	t.Logf("node %d took over %s after node %d crashed (TTL %s)", next, time.Since(killed).Round(time.Millisecond), holder, ttl)
	if nextToken <= token {
		t.Errorf("the new holder got token %d; want one above the crashed holder's %d", nextToken, token)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.most != 1 {
		t.Errorf("%d replicas ran the singleton at once; want at most 1", h.most)
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
