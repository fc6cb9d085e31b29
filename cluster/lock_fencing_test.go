package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
)

// fencedRegister is the resource a lock guards: it accepts a write only if
// the writer's fencing token is at least the highest one it has seen.
type fencedRegister struct {
	mu       sync.Mutex
	highest  uint64
	accepted []uint64
	rejected []uint64
}

func (r *fencedRegister) write(token uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if token < r.highest {
		r.rejected = append(r.rejected, token)
		return false
	}
	r.highest = token
	r.accepted = append(r.accepted, token)
	return true
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestLockFencedRegisterMutualExclusion has six workers on three nodes take
// one lock in turn and write their token to a fenced register. With TTLs
// far longer than the test, no lease can expire, so the lock alone must
// keep the critical sections apart: at most one worker is ever inside, no
// write is refused, and the accepted tokens strictly increase.
func TestLockFencedRegisterMutualExclusion(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	c.Leader(10 * time.Second)
	const workers, rounds = 6, 15
	var (
		reg      fencedRegister
		inside   atomic.Int32
		overlaps atomic.Int32
		wg       sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := c.Nodes[w%3]
			for i := range rounds {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				l, err := n.Lock(ctx, "fenced", time.Minute)
				if err != nil {
					cancel()
					t.Errorf("worker %d round %d: Lock: %v", w, i, err)
					return
				}
				if inside.Add(1) != 1 {
					overlaps.Add(1)
				}
				if !reg.write(l.Token()) {
					t.Errorf("worker %d: the holder's write with token %d was refused", w, l.Token())
				}
				for range 50 { // stay inside a little, so overlaps would show
					runtime.Gosched()
				}
				inside.Add(-1)
				if err := l.Unlock(ctx); err != nil {
					t.Errorf("worker %d round %d: Unlock: %v", w, i, err)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d critical sections overlapped", n)
	}
	if len(reg.accepted) != workers*rounds || len(reg.rejected) != 0 {
		t.Fatalf("register accepted %d writes and refused %d, want %d and 0", len(reg.accepted), len(reg.rejected), workers*rounds)
	}
	for i := 1; i < len(reg.accepted); i++ {
		if reg.accepted[i] <= reg.accepted[i-1] {
			t.Fatalf("accepted tokens do not strictly increase at %d: %v", i, reg.accepted)
		}
	}
}

// TestLockLeaseIsLiveOnEveryNode checks that a lease taken through any
// node, leader or follower, is live when Lock returns: Done stays open
// until it is released or lost. A follower typically gets the leader's
// answer before it has applied the granting entry itself, and it may still
// have older entries about the same lock to apply.
func TestLockLeaseIsLiveOnEveryNode(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	leader := c.Leader(10 * time.Second)
	ctx := context.Background()
	for i, n := range c.Nodes {
		role := "follower"
		if i == leader {
			role = "leader"
		}
		name := fmt.Sprint("live-", i)
		for round := range 10 {
			// Each acquire follows the previous holder's release at once,
			// so the node may also still be applying that release.
			var l *cluster.Lease
			var err error
			if round%2 == 0 {
				l, err = n.TryLock(ctx, name, time.Minute)
			} else {
				l, err = n.Lock(ctx, name, time.Minute)
			}
			if err != nil {
				t.Fatalf("node%d (%s) round %d: %v", i, role, round, err)
			}
			if isClosed(l.Done()) {
				t.Fatalf("node%d (%s) round %d: lease %d granted with Done already closed", i, role, round, l.Token())
			}
			// Let the node apply everything up to the grant, then check
			// again: no entry about this lock may have ended the lease.
			want := c.Nodes[leader].AppliedIndex()
			clustertest.Eventually(t, 5*time.Second, func() bool { return n.AppliedIndex() >= want }, "node%d never caught up", i)
			if isClosed(l.Done()) {
				t.Fatalf("node%d (%s) round %d: lease %d lost once the node applied the grant", i, role, round, l.Token())
			}
			if err := l.Renew(ctx); err != nil {
				t.Fatalf("node%d (%s) round %d: Renew: %v", i, role, round, err)
			}
			if err := l.Unlock(ctx); err != nil {
				t.Fatalf("node%d (%s) round %d: Unlock: %v", i, role, round, err)
			}
			if !isClosed(l.Done()) {
				t.Fatalf("node%d (%s) round %d: Done open after Unlock", i, role, round)
			}
		}
	}

	// A waiter on a follower that is handed the lock gets a live lease too.
	f := (leader + 1) % 3
	holder, err := c.Nodes[leader].Lock(ctx, "live-handoff", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *cluster.Lease, 1)
	go func() {
		l, err := c.Nodes[f].Lock(ctx, "live-handoff", time.Minute)
		if err != nil {
			t.Errorf("waiter: %v", err)
		}
		got <- l
	}()
	clustertest.Eventually(t, 5*time.Second, func() bool { return queued(c.Nodes[leader], "live-handoff") == 1 }, "waiter never queued")
	if err := holder.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	l := <-got
	if l == nil {
		t.FailNow()
	}
	if isClosed(l.Done()) {
		t.Fatalf("lease handed to a follower's waiter has Done closed")
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLockStaleHolderIsFenced has holder A take the lock with a short TTL
// and then stall (it never renews). B gets the lock once A's lease expires,
// with a higher token; A's late write is refused by the fenced register,
// A's Unlock reports ErrLeaseLost and does not free B's lock, and A's Done
// is closed.
func TestLockStaleHolderIsFenced(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	leader := c.Leader(10 * time.Second)
	ctx := context.Background()
	nA, nB, nC := c.Nodes[(leader+1)%3], c.Nodes[(leader+2)%3], c.Nodes[leader]
	var reg fencedRegister

	a, err := nA.Lock(ctx, "stale", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !reg.write(a.Token()) {
		t.Fatalf("A's first write with token %d refused", a.Token())
	}
	// A stalls here. B waits for A's lease to run out.
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, err := nB.Lock(bctx, "stale", time.Minute)
	if err != nil {
		t.Fatalf("B never got the lock after A's lease expired: %v", err)
	}
	if b.Token() <= a.Token() {
		t.Fatalf("B's token %d is not above A's %d", b.Token(), a.Token())
	}
	if !reg.write(b.Token()) {
		t.Fatalf("B's write with token %d refused", b.Token())
	}
	// A wakes up and writes with its old token.
	if reg.write(a.Token()) {
		t.Fatalf("stale holder's write with token %d accepted after token %d", a.Token(), b.Token())
	}
	select {
	case <-a.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("A's Done never closed after its lease expired")
	}
	if err := a.Renew(ctx); !errors.Is(err, cluster.ErrLeaseLost) {
		t.Fatalf("A's Renew: %v, want ErrLeaseLost", err)
	}
	if err := a.Unlock(ctx); !errors.Is(err, cluster.ErrLeaseLost) {
		t.Fatalf("A's Unlock: %v, want ErrLeaseLost", err)
	}
	// B still holds it: a third client cannot take it, on any node.
	for i, n := range []*cluster.Node{nC, nA, nB} {
		if l, err := n.TryLock(ctx, "stale", time.Second); !errors.Is(err, cluster.ErrLocked) {
			if l != nil {
				l.Unlock(ctx)
			}
			t.Fatalf("TryLock #%d after A's stale Unlock: %v, want ErrLocked", i, err)
		}
	}
	for _, n := range c.Nodes {
		clustertest.Eventually(t, 5*time.Second, func() bool {
			st, _ := cluster.State(n).Lock("stale")
			return st.Token == b.Token()
		}, "%s does not show B (token %d) holding the lock", n.Name(), b.Token())
	}
	if isClosed(b.Done()) {
		t.Fatal("B's lease was ended by A's stale Unlock")
	}
	if err := b.Renew(ctx); err != nil {
		t.Fatalf("B's Renew: %v", err)
	}
	if err := b.Unlock(ctx); err != nil {
		t.Fatalf("B's Unlock: %v", err)
	}
	if len(reg.accepted) != 2 || len(reg.rejected) != 1 {
		t.Fatalf("register accepted %v and refused %v, want A's then B's accepted and A's late write refused", reg.accepted, reg.rejected)
	}
}

// TestLockCancellationAtAnyPoint cancels contended Lock calls after random
// delays of 0 to 20ms, so the cancellation lands before the acquire is
// proposed, while it is in flight, while the caller is queued, and while the
// lock is being handed to it. Whatever the timing, once every holder has
// unlocked, the lock must be free with nobody queued.
func TestLockCancellationAtAnyPoint(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	c.Leader(10 * time.Second)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	bg := context.Background()
	const iterations, callers = 25, 4
	var cancelled, granted atomic.Int32
	for it := range iterations {
		name := "cancel-any"
		holder, err := c.Nodes[rng.IntN(3)].Lock(bg, name, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for k := range callers {
			n := c.Nodes[rng.IntN(3)]
			delay := time.Duration(rng.Int64N(int64(20 * time.Millisecond)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithCancel(bg)
				defer cancel()
				stop := time.AfterFunc(delay, cancel)
				defer stop.Stop()
				l, err := n.Lock(ctx, name, time.Minute)
				switch {
				case err == nil:
					granted.Add(1)
					if err := l.Unlock(bg); err != nil {
						t.Errorf("iteration %d caller %d: Unlock of a granted lease: %v", it, k, err)
					}
				case errors.Is(err, context.Canceled):
					cancelled.Add(1)
				default:
					t.Errorf("iteration %d caller %d: Lock: %v, want success or context.Canceled", it, k, err)
				}
			}()
		}
		// The holder lets go at a random point too, so some grants race
		// with the cancellations.
		release := time.Duration(rng.Int64N(int64(20 * time.Millisecond)))
		wg.Add(1)
		time.AfterFunc(release, func() {
			defer wg.Done()
			if err := holder.Unlock(bg); err != nil {
				t.Errorf("iteration %d: holder Unlock: %v", it, err)
			}
		})
		wg.Wait()
		for _, n := range c.Nodes {
			clustertest.Eventually(t, 5*time.Second, func() bool {
				_, ok := cluster.State(n).Lock(name)
				return !ok
			}, "iteration %d: %s still has state for the lock after every caller returned: %+v", it, n.Name(), lockState(n, name))
		}
		l, err := c.Nodes[rng.IntN(3)].TryLock(bg, name, time.Minute)
		if err != nil {
			t.Fatalf("iteration %d: TryLock after every caller returned: %v", it, err)
		}
		if err := l.Unlock(bg); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d calls cancelled, %d granted", cancelled.Load(), granted.Load())
	if cancelled.Load() == 0 || granted.Load() == 0 {
		t.Fatalf("cancelled %d and granted %d: the delays did not exercise both outcomes", cancelled.Load(), granted.Load())
	}
}

func lockState(n *cluster.Node, name string) string {
	st, ok := cluster.State(n).Lock(name)
	if !ok {
		return "free"
	}
	return fmt.Sprintf("owner %q token %d, %d waiters", st.Owner, st.Token, len(st.Waiters))
}

// TestLockLeaseSurvivesLeaderKill holds a lease through a follower, kills
// the leader, and checks the lease outlives the election: nobody else can
// take the lock meanwhile, and after the new leader is elected Renew
// succeeds with the same token.
func TestLockLeaseSurvivesLeaderKill(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{Configure: func(i int, cfg *cluster.Config) {
		cfg.LeaveTimeout = time.Second
	}})
	t.Cleanup(func() {
		for _, n := range c.Nodes {
			if n != nil {
				clustertest.Kill(n)
			}
		}
	})
	leader := c.Leader(10 * time.Second)
	ctx := context.Background()
	h, o := (leader+1)%3, (leader+2)%3
	l, err := c.Nodes[h].Lock(ctx, "survive", 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	token := l.Token()

	// Another client keeps trying to take the lock through the election.
	stop := make(chan struct{})
	var attempts, stolen atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			other, err := c.Nodes[o].TryLock(tctx, "survive", time.Minute)
			cancel()
			attempts.Add(1)
			if err == nil {
				stolen.Add(1)
				other.Unlock(ctx)
			}
		}
	}()

	if err := clustertest.Kill(c.Nodes[leader]); err != nil {
		t.Logf("kill: %v", err)
	}
	c.Nodes[leader] = nil
	newLeader := c.Leader(15 * time.Second)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := l.Renew(rctx); err != nil {
		t.Fatalf("Renew after the new leader (node%d) was elected: %v", newLeader, err)
	}
	if l.Token() != token {
		t.Fatalf("token changed from %d to %d", token, l.Token())
	}
	for _, i := range []int{h, o} {
		clustertest.Eventually(t, 5*time.Second, func() bool {
			st, _ := cluster.State(c.Nodes[i]).Lock("survive")
			return st.Token == token
		}, "node%d does not show the lease (token %d) holding the lock: %s", i, token, lockState(c.Nodes[i], "survive"))
	}
	if isClosed(l.Done()) {
		t.Fatal("lease's Done closed across the leader change")
	}
	// Keep the contender going until it has had a go against the new
	// leader, which answers definitively.
	clustertest.Eventually(t, 10*time.Second, func() bool {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		other, err := c.Nodes[o].TryLock(tctx, "survive", time.Minute)
		if err == nil {
			stolen.Add(1)
			other.Unlock(ctx)
		}
		return errors.Is(err, cluster.ErrLocked)
	}, "TryLock against the new leader never answered ErrLocked")
	close(stop)
	<-done
	if n := stolen.Load(); n != 0 {
		t.Fatalf("another client took the lock %d times while the lease was held", n)
	}
	if attempts.Load() == 0 {
		t.Fatal("the contender never tried")
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	next, err := c.Nodes[o].TryLock(ctx, "survive", time.Minute)
	if err != nil {
		t.Fatalf("TryLock after Unlock: %v", err)
	}
	if next.Token() <= token {
		t.Fatalf("next token %d not above %d", next.Token(), token)
	}
	next.Unlock(ctx)
}
