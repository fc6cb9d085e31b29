package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/fsm"
)

type jobController interface {
	SetPaused(ctx context.Context, job string, paused bool) error
	RunNow(ctx context.Context, job string) (*fsm.RunNowResult, error)
}

// TestNewCommandsWaitForEveryServer runs three nodes of which node2
// advertises fsm.ProtocolBase, as a node of the previous release does.
// Pause and run-now, which need fsm.ProtocolJobControl, must be refused on
// every node (the leader and the followers alike) with an error naming
// node2 and committing nothing, and finished runs must be left out of run
// updates; once node2 advertises the new protocol, both work.
func TestNewCommandsWaitForEveryServer(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{Configure: func(i int, cfg *cluster.Config) {
		if i == 2 {
			cluster.SetProtocol(cfg, fsm.ProtocolBase)
		}
	}})
	c.Leader(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	finished := []fsm.Finished{{Job: "a"}}
	waitGossipOfAll(t, c)
	for _, n := range c.Nodes {
		jc := cluster.Plumbing(n).(jobController)
		err := jc.SetPaused(ctx, "a", true)
		if !errors.Is(err, cluster.ErrProtocol) || !strings.Contains(err.Error(), "node2 runs 1") || !strings.Contains(err.Error(), "pause needs every server on protocol >= 2") {
			t.Errorf("pause on %s with node2 on protocol 1: %v, want ErrProtocol naming node2", n.Name(), err)
		}
		if _, err := jc.RunNow(ctx, "a"); !errors.Is(err, cluster.ErrProtocol) {
			t.Errorf("run-now on %s with node2 on protocol 1: %v, want ErrProtocol", n.Name(), err)
		}
		if got := cluster.FinishedRuns(n, finished); got != nil {
			t.Errorf("%s sends finished runs while node2 runs protocol 1: %v", n.Name(), got)
		}
	}
	for _, n := range c.Nodes {
		if cluster.State(n).Paused("a") {
			t.Fatalf("%s has job a paused after every pause was refused", n.Name())
		}
	}

	cluster.Advertise(c.Nodes[2], fsm.ProtocolVersion)
	jc := cluster.Plumbing(c.Nodes[2]).(jobController)
	var last error
	// Gossip carries node2's new version to the others in the broadcast
	// that UpdateNode starts, and each node caches its floor for up to a
	// second. A broadcast that memberlist drops (see
	// TestDroppedMetaUpdateIsAnnouncedAgain) is announced again by node2's
	// maintenance loop within a pass or two, and a lost UDP packet is made
	// good by memberlist's next push/pull, every 30 s (its LAN default), so
	// the waits below allow for one of those.
	const propagation = 40 * time.Second
	clustertest.Eventually(t, propagation, func() bool {
		last = jc.SetPaused(ctx, "a", true)
		return last == nil
	}, "pause still refused after node2 advertised protocol %d: %v", fsm.ProtocolVersion, lazyErr(func() error { return last }))
	for _, n := range c.Nodes {
		clustertest.Eventually(t, 10*time.Second, func() bool { return cluster.State(n).Paused("a") }, "job a not paused on %s", n.Name())
		clustertest.Eventually(t, propagation, func() bool { return len(cluster.FinishedRuns(n, finished)) == 1 }, "%s still leaves finished runs out", n.Name())
	}
	if _, err := jc.RunNow(ctx, "b"); err != nil {
		t.Errorf("run-now once every server speaks protocol %d: %v", fsm.ProtocolVersion, err)
	}
}

// waitGossipOfAll waits until every node of c sees every node in gossip,
// which carries the protocol version each advertises.
func waitGossipOfAll(t *testing.T, c *clustertest.Cluster) {
	t.Helper()
	clustertest.Eventually(t, 10*time.Second, func() bool {
		for _, n := range c.Nodes {
			if len(n.Members()) < len(c.Nodes) {
				return false
			}
		}
		return true
	}, "gossip never saw all %d members", len(c.Nodes))
}

// TestDroppedMetaUpdateIsAnnouncedAgain leaves node2's new protocol
// version out of memberlist's entry for node2, as memberlist leaves it when
// a refutation of a suspicion overtakes UpdateNode: then neither the
// broadcast nor push/pull would ever carry it, and node2 stayed on its old
// version in its peers' view (a CI run waited 40 s for it). The
// maintenance loop must notice and announce it again, within a few of
// its passes.
func TestDroppedMetaUpdateIsAnnouncedAgain(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{Configure: func(i int, cfg *cluster.Config) {
		if i == 2 {
			cluster.SetProtocol(cfg, fsm.ProtocolBase)
		}
	}})
	c.Leader(10 * time.Second)
	for _, n := range c.Nodes[:2] {
		clustertest.Eventually(t, 10*time.Second, func() bool { return cluster.MemberProtocol(n, "node2") == fsm.ProtocolBase }, "%s never saw node2 on protocol %d", n.Name(), fsm.ProtocolBase)
	}
	cluster.AdvertiseDropped(c.Nodes[2], fsm.ProtocolVersion)
	for _, n := range c.Nodes[:2] {
		// clustertest's ReconcileInterval is 500 ms; 5 s is ten passes
		// and far below memberlist's 30 s push/pull, which would not
		// help anyway: it carries the entry's old meta.
		clustertest.Eventually(t, 5*time.Second, func() bool { return cluster.MemberProtocol(n, "node2") == fsm.ProtocolVersion }, "%s still sees node2 on an older protocol", n.Name())
	}
}

// TestForwardedUnknownCommandIsNotCommitted forwards a command of a type no
// build knows to the leader: the leader must refuse it without committing
// it, since every replica would halt on it, and stay healthy.
func TestForwardedUnknownCommandIsNotCommitted(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	leader := c.Leader(10 * time.Second)
	follower := c.Nodes[(leader+1)%3]
	cmd := append([]byte{1, 13}, make([]byte, 8)...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := cluster.Propose(follower, ctx, cmd)
	if !errors.Is(err, fsm.ErrUnknownCommand) {
		t.Fatalf("forwarded command type 13: %v, want ErrUnknownCommand", err)
	}
	for _, n := range c.Nodes {
		if err := cluster.ProtocolHealth(n); err != nil {
			t.Errorf("%s halted: %v", n.Name(), err)
		}
	}
}

// TestCommittedNewerEntryHaltsEveryReplica commits, through Raft directly
// as a newer leader would, an entry of a type this build does not know.
// Every node must halt there rather than skip it: report ErrHalted from
// its health check, grant nothing more, and still shut down cleanly.
func TestCommittedNewerEntryHaltsEveryReplica(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	leader := c.Leader(10 * time.Second)
	newer := append([]byte{1, 13}, make([]byte, 8)...)
	err := cluster.RaftApply(c.Nodes[leader], newer)
	if err != nil {
		t.Fatalf("commit the newer entry: %v", err)
	}
	for _, n := range c.Nodes {
		clustertest.Eventually(t, 10*time.Second, func() bool { return errors.Is(cluster.ProtocolHealth(n), fsm.ErrHalted) }, "%s did not halt on the newer entry", n.Name())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if l, err := c.Nodes[0].TryLock(ctx, "after-halt", time.Second); !errors.Is(err, fsm.ErrHalted) {
		t.Errorf("TryLock on a halted node: lease %v, error %v; want ErrHalted", l, err)
	}
}

// TestAnyOrderClaimsWaitForEveryServer runs three nodes of which node2
// speaks fsm.ProtocolJobControl, as a node of the previous release does.
// Claims asked for in any order must go as plain claims, which node2
// applies, both from a node that knows node2's version and through a
// leader that gets one as fsm.CommandClaimAnyOrder (it turns it into a
// plain claim rather than fail the tick). Once node2 advertises the new
// protocol, claims go in any order: the job's state keeps a record.
func TestAnyOrderClaimsWaitForEveryServer(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{Configure: func(i int, cfg *cluster.Config) {
		if i == 2 {
			cluster.SetProtocol(cfg, fsm.ProtocolJobControl)
		}
	}})
	leader := c.Leader(10 * time.Second)
	follower := c.Nodes[(leader+1)%3]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	waitGossipOfAll(t, c)
	// A job's record is known, once its grant came from an any-order
	// claim, down to before its first grant.
	recordKnown := func(n *cluster.Node, job string) bool {
		st, ok := cluster.State(n).Job(job)
		if !ok {
			t.Fatalf("%s has no grant of %s", n.Name(), job)
		}
		_, known := st.Granted(st.LastAt - 1)
		return known
	}

	res, err := cluster.Plumbing(follower).Claim(ctx, []fsm.Claim{claimNow("plain", 1)}, true)
	if err != nil || !res.Outcomes[0].Granted() {
		t.Fatalf("claim with node2 on protocol 2: %+v, %v", res, err)
	}
	out, err := cluster.Propose(follower, ctx, fsm.EncodeClaims(fsm.ClaimBatch{Node: follower.Name(), AnyOrder: true, Claims: []fsm.Claim{claimNow("forwarded", 1)}}))
	if err != nil {
		t.Fatalf("forwarded any-order claim with node2 on protocol 2: %v", err)
	}
	if r, err := fsm.DecodeClaimResult(out); err != nil || !r.Outcomes[0].Granted() {
		t.Fatalf("forwarded any-order claim: %+v, %v", r, err)
	}
	for _, n := range c.Nodes {
		clustertest.Eventually(t, 10*time.Second, func() bool { _, ok := cluster.State(n).Job("forwarded"); return ok }, "%s never applied the forwarded claim", n.Name())
		if err := cluster.ProtocolHealth(n); err != nil {
			t.Fatalf("%s halted: %v", n.Name(), err)
		}
		for _, job := range []string{"plain", "forwarded"} {
			if recordKnown(n, job) {
				t.Errorf("%s: job %s was granted by an any-order claim while node2 runs protocol 2", n.Name(), job)
			}
		}
	}

	cluster.Advertise(c.Nodes[2], fsm.ProtocolVersion)
	const propagation = 40 * time.Second // see TestNewCommandsWaitForEveryServer
	tick := int64(0)
	clustertest.Eventually(t, propagation, func() bool {
		tick++
		res, err := cluster.Plumbing(follower).Claim(ctx, []fsm.Claim{claimNow("any-order", tick)}, true)
		return err == nil && res.Outcomes[0].Granted() && recordKnown(c.Nodes[leader], "any-order")
	}, "claims still go as plain claims after node2 advertised protocol %d", fsm.ProtocolVersion)
}
