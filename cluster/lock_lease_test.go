package cluster_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
)

// TestLockWaiterQueuedLongerThanTTLGetsFullLease queues a Lock call for
// longer than its own TTL. The lease it is finally granted must run for its
// TTL from the grant: Done open, the lock refused to others, Renew working.
// Counting validity from the original request instead gave a lease whose
// Done was closed on return while the caller was told it held the lock.
func TestLockWaiterQueuedLongerThanTTLGetsFullLease(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	leader := c.Leader(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	holderNode, waiterNode, otherNode := c.Nodes[leader], c.Nodes[(leader+1)%3], c.Nodes[(leader+2)%3]
	holder, err := holderNode.Lock(ctx, "queued-ttl", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	const ttl = 2 * time.Second
	type result struct {
		l   *cluster.Lease
		err error
		at  time.Time
	}
	got := make(chan result, 1)
	go func() {
		l, err := waiterNode.Lock(ctx, "queued-ttl", ttl)
		got <- result{l, err, time.Now()}
	}()
	clustertest.Eventually(t, 5*time.Second, func() bool { return queued(holderNode, "queued-ttl") == 1 }, "waiter never queued")
	queuedAt := time.Now()
	// Queue the waiter for one and a half of its TTLs.
	<-time.After(3 * ttl / 2)
	if err := holder.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatalf("waiter's Lock: %v", r.err)
	}
	if waited := r.at.Sub(queuedAt); waited < ttl {
		t.Fatalf("waiter got the lock after %s, within its TTL; the test needs a longer wait", waited)
	}
	l := r.l
	if l.Token() <= holder.Token() {
		t.Fatalf("token did not increase: %d then %d", holder.Token(), l.Token())
	}
	// For half the TTL after Lock returned, the lease must be live here and
	// the lock held for everyone else.
	for time.Since(r.at) < ttl/2 {
		if isClosed(l.Done()) {
			t.Fatalf("Done closed %s after a queued Lock returned, TTL %s", time.Since(r.at), ttl)
		}
		if _, err := otherNode.TryLock(ctx, "queued-ttl", time.Second); !errors.Is(err, cluster.ErrLocked) {
			t.Fatalf("TryLock %s after the grant: %v, want ErrLocked", time.Since(r.at), err)
		}
		<-time.After(50 * time.Millisecond)
	}
	if err := l.Renew(ctx); err != nil {
		t.Fatalf("Renew of the granted lease: %v", err)
	}
	if isClosed(l.Done()) {
		t.Fatal("Done closed after a successful Renew")
	}
	// Without renewals the local deadline passes; the lock has no waiter,
	// so the state machine may still show this lease as holder, but Renew
	// on the ended lease must say it is lost rather than succeed.
	select {
	case <-l.Done():
	case <-time.After(3 * ttl):
		t.Fatal("lease's Done never closed after its TTL without renewals")
	}
	if err := l.Renew(ctx); !errors.Is(err, cluster.ErrLeaseLost) {
		t.Fatalf("Renew after Done closed: %v, want ErrLeaseLost", err)
	}
	if !isClosed(l.Done()) {
		t.Fatal("Done reopened")
	}
}

// TestLockWaiterWokenAfterSnapshotInstall queues a Lock call on a follower,
// cuts the follower off, and meanwhile grants the call's request, lets the
// grant expire to the next waiter, frees the lock and compacts the leader's
// log. Healed, the follower installs a snapshot in which the request is
// settled; the call must not hang but retry and take the now free lock.
func TestLockWaiterWokenAfterSnapshotInstall(t *testing.T) {
	fn := newFaultNet()
	c := clustertest.MakeCluster(t, 3, clustertest.Options{Configure: func(i int, cfg *cluster.Config) {
		fn.configure(t, i, cfg)
		cfg.TrailingLogs = 1
	}})
	leader := c.Leader(10 * time.Second)
	fi, oi := (leader+1)%3, (leader+2)%3
	ln, fol, other := c.Nodes[leader], c.Nodes[fi], c.Nodes[oi]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const name = "snap-waiter"

	holder, err := ln.Lock(ctx, name, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		l   *cluster.Lease
		err error
	}
	waiter := make(chan result, 1)
	go func() {
		l, err := fol.Lock(ctx, name, 300*time.Millisecond)
		waiter <- result{l, err}
	}()
	clustertest.Eventually(t, 5*time.Second, func() bool { return queued(ln, name) == 1 }, "follower's waiter never queued")
	st, _ := cluster.State(ln).Lock(name)
	waiterOwner := st.Waiters[0].Owner
	next := make(chan result, 1)
	go func() {
		l, err := other.Lock(ctx, name, time.Minute)
		next <- result{l, err}
	}()
	clustertest.Eventually(t, 5*time.Second, func() bool { return queued(ln, name) == 2 }, "second waiter never queued")

	// Let the follower apply everything so far, so that what it misses
	// below is exactly what the snapshot settles.
	clustertest.Eventually(t, 5*time.Second, func() bool {
		return cluster.State(fol).AppliedIndex() == cluster.State(ln).AppliedIndex()
	}, "follower never caught up before the cut")
	fn.isolate(fi, 3)
	followerApplied := cluster.State(fol).AppliedIndex()
	if err := holder.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	// The cut-off waiter is granted the lock, cannot confirm it, and its
	// lease expires to the second waiter.
	r := <-next
	if r.err != nil {
		t.Fatalf("second waiter: %v", r.err)
	}
	if err := r.l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		l, err := ln.TryLock(ctx, "filler-"+strconv.Itoa(i), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := cluster.RaftSnapshot(ln); err != nil {
		t.Fatalf("leader snapshot: %v", err)
	}
	if got := cluster.State(fol).AppliedIndex(); got != followerApplied {
		t.Fatalf("cut-off follower applied %d entries meanwhile", got-followerApplied)
	}
	if _, ok := cluster.State(ln).Lock(name); ok {
		t.Fatalf("lock %q not free before healing", name)
	}

	fn.heal()
	clustertest.Eventually(t, 15*time.Second, func() bool {
		idx, _ := strconv.ParseUint(cluster.RaftStat(fol, "last_snapshot_index"), 10, 64)
		return idx > followerApplied
	}, "follower never installed the leader's snapshot")
	select {
	case r := <-waiter:
		if r.err != nil {
			t.Fatalf("Lock waiting on the follower: %v", r.err)
		}
		if r.l.Token() <= holder.Token() {
			t.Fatalf("lease token %d not above the first holder's %d", r.l.Token(), holder.Token())
		}
		if st, _ := cluster.State(ln).Lock(name); st.Owner == waiterOwner || !strings.HasPrefix(st.Owner, fol.Name()+"/") {
			t.Fatalf("lock owner after the retry is %q, want a new owner of %s (not %q)", st.Owner, fol.Name(), waiterOwner)
		}
		if err := r.l.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Lock on the follower still waiting 20s after it installed a snapshot that settled its request")
	}
}
