package cluster_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
)

func TestLockTryLockUnlock(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	c.Leader(10 * time.Second)
	ctx := context.Background()
	a, b := c.Nodes[0], c.Nodes[1]

	l1, err := a.Lock(ctx, "res", 10*time.Second)
	if err != nil {
		t.Fatalf("lock: %v", err)
	}
	if _, err := b.TryLock(ctx, "res", time.Second); !errors.Is(err, cluster.ErrLocked) {
		t.Fatalf("TryLock on a held lock: %v, want ErrLocked", err)
	}
	if err := l1.Unlock(ctx); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	select {
	case <-l1.Done():
	default:
		t.Fatal("Done not closed after Unlock")
	}
	if err := l1.Unlock(ctx); !errors.Is(err, cluster.ErrLeaseLost) {
		t.Fatalf("second unlock: %v, want ErrLeaseLost", err)
	}
	l2, err := b.TryLock(ctx, "res", 10*time.Second)
	if err != nil {
		t.Fatalf("TryLock on a free lock: %v", err)
	}
	if l2.Token() <= l1.Token() {
		t.Fatalf("token did not increase: %d then %d", l1.Token(), l2.Token())
	}
	// A stale lease cannot free the new holder's lock.
	if err := l1.Unlock(ctx); !errors.Is(err, cluster.ErrLeaseLost) {
		t.Fatalf("stale unlock: %v, want ErrLeaseLost", err)
	}
	if _, err := a.TryLock(ctx, "res", time.Second); !errors.Is(err, cluster.ErrLocked) {
		t.Fatalf("stale unlock freed the lock: %v", err)
	}
	if err := l2.Renew(ctx); err != nil {
		t.Fatalf("renew: %v", err)
	}
}

func TestLockWaitersAreServedInFIFOOrder(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	c.Leader(10 * time.Second)
	ctx := context.Background()
	first, err := c.Nodes[0].Lock(ctx, "fifo", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := 1; i <= 3; i++ {
		// Queue one at a time so the arrival order is known.
		before := queued(c.Nodes[0], "fifo")
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			l, err := c.Nodes[i%3].Lock(ctx, "fifo", 30*time.Second)
			if err != nil {
				t.Errorf("waiter %d: %v", i, err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			if err := l.Unlock(ctx); err != nil {
				t.Errorf("waiter %d unlock: %v", i, err)
			}
		}(i)
		clustertest.Eventually(t, 5*time.Second, func() bool { return queued(c.Nodes[0], "fifo") == before+1 }, "waiter %d never queued", i)
	}
	if err := first.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(order) != 3 || order[0] != 1 || order[1] != 2 || order[2] != 3 {
		t.Fatalf("waiters served in order %v, want [1 2 3]", order)
	}
}

func queued(n *cluster.Node, name string) int {
	st, _ := cluster.State(n).Lock(name)
	return len(st.Waiters)
}

func TestLockExpiresAndHandsOff(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	c.Leader(10 * time.Second)
	ctx := context.Background()
	old, err := c.Nodes[0].Lock(ctx, "ttl", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	next, err := c.Nodes[1].Lock(ctx, "ttl", 10*time.Second)
	if err != nil {
		t.Fatalf("waiter: %v", err)
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Fatalf("waiter got the lock after %s, before the holder's TTL", waited)
	}
	select {
	case <-old.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("expired lease's Done never closed")
	}
	if err := old.Renew(ctx); !errors.Is(err, cluster.ErrLeaseLost) {
		t.Fatalf("renew of expired lease: %v, want ErrLeaseLost", err)
	}
	if next.Token() <= old.Token() {
		t.Fatalf("token did not increase across expiry: %d then %d", old.Token(), next.Token())
	}
}

func TestCancelledLockNeverLeavesTheLockHeld(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	c.Leader(10 * time.Second)
	bg := context.Background()
	holder, err := c.Nodes[0].Lock(bg, "cancel", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Nodes[1].Lock(ctx, "cancel", 30*time.Second)
		errc <- err
	}()
	clustertest.Eventually(t, 5*time.Second, func() bool { return queued(c.Nodes[0], "cancel") == 1 }, "waiter never queued")
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Lock returned %v", err)
	}
	clustertest.Eventually(t, 5*time.Second, func() bool { return queued(c.Nodes[0], "cancel") == 0 }, "cancelled waiter still queued")
	if err := holder.Unlock(bg); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Nodes[2].TryLock(bg, "cancel", time.Second); err != nil {
		t.Fatalf("lock held after the only waiter cancelled: %v", err)
	}
}

func TestGracefulLeaveReleasesLocks(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	c.Leader(10 * time.Second)
	ctx := context.Background()
	if _, err := c.Nodes[2].Lock(ctx, "leave", time.Hour); err != nil {
		t.Fatal(err)
	}
	c.Stop(2)
	if _, err := c.Nodes[0].TryLock(ctx, "leave", time.Second); err != nil {
		t.Fatalf("lock of a gracefully departed node still held: %v", err)
	}
}

func TestKeepAliveHoldsPastTTL(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	c.Leader(10 * time.Second)
	ctx := context.Background()
	// The TTL leaves room for a renewal round trip on a loaded CI machine
	// under -race; the lock is watched for three TTLs.
	const ttl = time.Second
	l, err := c.Nodes[0].Lock(ctx, "ka", ttl, cluster.WithKeepAlive())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for time.Since(start) < 3*ttl {
		if _, err := c.Nodes[1].TryLock(ctx, "ka", time.Second); !errors.Is(err, cluster.ErrLocked) {
			t.Fatalf("kept-alive lock taken after %s: %v", time.Since(start), err)
		}
		select {
		case <-l.Done():
			t.Fatal("kept-alive lease lost")
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}
