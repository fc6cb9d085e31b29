package cluster_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
)

// TestStatusLocksAndAdmin checks, on one three-node cluster, what an
// operator sees (Status, Locks, Ready) and the two changes they can make
// by hand (TransferLeadership, RemovePeer), with each refusal.
func TestStatusLocksAndAdmin(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	li := c.Leader(10 * time.Second)
	leader := c.Nodes[li]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Every node agrees on the leader and lists three voters, one leading.
	for _, n := range c.Nodes {
		st := n.Status()
		if st.Node != n.Name() || st.Cluster != cluster.DefaultClusterName || st.Leader != leader.Name() {
			t.Fatalf("%s: status names node %q cluster %q leader %q, want %q %q %q", n.Name(), st.Node, st.Cluster, st.Leader, n.Name(), cluster.DefaultClusterName, leader.Name())
		}
		wantRole := "follower"
		if n == leader {
			wantRole = "leader"
		}
		if st.Role != wantRole || st.Term == 0 || st.CommitIndex == 0 || st.LastIndex < st.CommitIndex {
			t.Fatalf("%s: role %q term %d commit %d last %d", n.Name(), st.Role, st.Term, st.CommitIndex, st.LastIndex)
		}
		if len(st.Members) != 3 {
			t.Fatalf("%s: %d members, want 3: %+v", n.Name(), len(st.Members), st.Members)
		}
		var roles []string
		for _, m := range st.Members {
			if !m.InGossip || m.Gossip != cluster.StatusAlive || m.RaftAddr == "" || m.GossipAddr == "" {
				t.Fatalf("%s: member %+v is not alive in gossip with both addresses", n.Name(), m)
			}
			roles = append(roles, m.Role)
			if m.Role == "leader" && m.Name != leader.Name() {
				t.Fatalf("%s: member %s has role leader, the leader is %s", n.Name(), m.Name, leader.Name())
			}
		}
		slices.Sort(roles)
		if !slices.Equal(roles, []string{"leader", "voter", "voter"}) {
			t.Fatalf("%s: roles %v", n.Name(), roles)
		}
		if err := n.Ready(); err != nil {
			t.Fatalf("%s: Ready: %v", n.Name(), err)
		}
	}
	// The leader's autopilot judges all three healthy; followers judge none.
	clustertest.Eventually(t, 15*time.Second, func() bool {
		for _, m := range leader.Status().Members {
			if m.Health == nil || !m.Health.Healthy || m.Health.LastContact < 0 {
				return false
			}
		}
		return true
	}, "leader never reported three healthy servers")
	for _, n := range c.Nodes {
		if n == leader {
			continue
		}
		for _, m := range n.Status().Members {
			if m.Health != nil {
				t.Fatalf("follower %s reports health of %s", n.Name(), m.Name)
			}
		}
	}

	// Locks: a holder and a queued waiter, seen from a third node.
	holder, waiter, viewer := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	lease, err := holder.TryLock(ctx, "db", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	waited := make(chan error, 1)
	go func() {
		_, err := waiter.Lock(wctx, "db", time.Minute)
		waited <- err
	}()
	clustertest.Eventually(t, 10*time.Second, func() bool {
		locks := viewer.Locks()
		return len(locks) == 1 && locks[0].Name == "db" && locks[0].Node == holder.Name() &&
			locks[0].Token == lease.Token() && slices.Equal(locks[0].Waiters, []string{waiter.Name()}) &&
			time.Until(locks[0].Expires) > 30*time.Second
	}, "lock listing never showed %s holding db with token %d and %s waiting: %+v", holder.Name(), lease.Token(), waiter.Name(), viewer.Locks())
	wcancel()
	if err := <-waited; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	if err := lease.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 10*time.Second, func() bool { return len(viewer.Locks()) == 0 }, "lock still listed after unlock: %+v", viewer.Locks())

	// Refusals, each naming what to do.
	var follower *cluster.Node
	for _, n := range c.Nodes {
		if n != leader {
			follower = n
			break
		}
	}
	if err := leader.TransferLeadership(ctx, "nobody"); !errors.Is(err, cluster.ErrUnknownPeer) {
		t.Fatalf("transfer to nobody: %v", err)
	}
	// A follower forwards the request; the leader's refusal comes back as
	// the same error, naming the voters.
	if err := follower.TransferLeadership(ctx, "nobody"); !errors.Is(err, cluster.ErrUnknownPeer) || !strings.Contains(err.Error(), follower.Name()) {
		t.Fatalf("transfer to nobody through a follower: %v, want ErrUnknownPeer listing the voters", err)
	}
	if err := leader.RemovePeer(ctx, leader.Name()); !errors.Is(err, cluster.ErrRemoveSelf) {
		t.Fatalf("remove self: %v", err)
	}
	if err := leader.RemovePeer(ctx, "nobody"); !errors.Is(err, cluster.ErrUnknownPeer) || !strings.Contains(err.Error(), follower.Name()) {
		t.Fatalf("remove nobody: %v, want ErrUnknownPeer listing the servers", err)
	}
	if err := leader.RemovePeer(ctx, follower.Name()); !errors.Is(err, cluster.ErrPeerAlive) {
		t.Fatalf("remove a live peer: %v", err)
	}

	// Transfer to a named follower, asked of that follower, moves
	// leadership there.
	if err := follower.TransferLeadership(ctx, follower.Name()); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 10*time.Second, func() bool {
		for _, n := range c.Nodes {
			if n.Leader() != follower.Name() {
				return false
			}
		}
		return follower.IsLeader()
	}, "leadership never moved to %s", follower.Name())

	// Kill the old leader, then remove it through a node that does not
	// lead, which forwards to the new leader.
	dead := slices.Index(c.Nodes, leader)
	if err := clustertest.Kill(leader); err != nil {
		t.Fatal(err)
	}
	c.Nodes[dead] = nil
	var other *cluster.Node
	for _, n := range c.Running() {
		if n != follower {
			other = n
		}
	}
	clustertest.Eventually(t, 20*time.Second, func() bool {
		for _, m := range other.Members() {
			if m.Name == leader.Name() {
				return m.Status != cluster.StatusAlive
			}
		}
		return true
	}, "gossip never saw %s fail", leader.Name())
	if err := other.RemovePeer(ctx, leader.Name()); err != nil {
		t.Fatalf("remove dead peer through a follower: %v", err)
	}
	for _, n := range c.Running() {
		clustertest.Eventually(t, 10*time.Second, func() bool {
			servers, err := n.Servers()
			return err == nil && len(servers) == 2
		}, "%s still has the removed peer in its configuration", n.Name())
		if err := n.Ready(); err != nil {
			t.Fatalf("%s after removal: %v", n.Name(), err)
		}
	}
}

// TestReadyWithoutQuorum checks that a node that lost its quorum says it
// is not ready, and why.
func TestReadyWithoutQuorum(t *testing.T) {
	// A short LeaveTimeout: the survivor's graceful leave at cleanup has
	// no quorum to leave through and would wait out each timeout.
	c := clustertest.MakeCluster(t, 3, clustertest.Options{Configure: func(_ int, c *cluster.Config) { c.LeaveTimeout = time.Second }})
	c.Leader(10 * time.Second)
	for i := 1; i < 3; i++ {
		if err := clustertest.Kill(c.Nodes[i]); err != nil {
			t.Fatal(err)
		}
		c.Nodes[i] = nil
	}
	n := c.Nodes[0]
	clustertest.Eventually(t, 15*time.Second, func() bool {
		err := n.Ready()
		return errors.Is(err, cluster.ErrNotReady) && strings.Contains(err.Error(), "knows no leader")
	}, "lone node still ready: %v", n.Ready())
}
