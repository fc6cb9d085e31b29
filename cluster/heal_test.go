package cluster_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/scheduler"
)

// errGossipPartitioned is what a gossip dial across an injected partition
// returns.
var errGossipPartitioned = errors.New("faultnet: gossip connection refused (injected partition)")

// gossipTransport is memberlist's own network transport with the fault
// net's partitions applied to gossip: packets to a node cut off from this
// one are dropped and stream dials to it refused. Partitions are
// symmetric, so filtering what each node sends cuts both directions.
type gossipTransport struct {
	memberlist.NodeAwareTransport
	fn   *faultNet
	self int
}

func (g *gossipTransport) blocked(addr string) bool {
	g.fn.mu.Lock()
	defer g.fn.mu.Unlock()
	peer, ok := g.fn.gossipAddrs[addr]
	return ok && g.fn.blocked[pairOf(g.self, peer)]
}

func (g *gossipTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if g.blocked(addr) {
		return time.Now(), nil // lost on the wire, as UDP would be
	}
	return g.NodeAwareTransport.WriteTo(b, addr)
}

func (g *gossipTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return g.WriteTo(b, a.Addr)
}

func (g *gossipTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if g.blocked(addr) {
		return nil, errGossipPartitioned
	}
	return g.NodeAwareTransport.DialTimeout(addr, timeout)
}

func (g *gossipTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return g.DialTimeout(a.Addr, timeout)
}

// gossipDeadTime is the test's memberlist GossipToTheDeadTime: how long
// after declaring a member dead gossip stops talking to it.
const gossipDeadTime = time.Second

// configureGossip makes node i gossip through the fault net, with
// memberlist's timings shortened so that failure detection and
// GossipToTheDeadTime pass in about a second.
func (f *faultNet) configureGossip(t testing.TB, i int, c *cluster.Config) {
	f.mu.Lock()
	if f.gossipAddrs == nil {
		f.gossipAddrs = make(map[string]int)
	}
	f.gossipAddrs[c.BindAddr] = i
	f.mu.Unlock()
	cluster.SetTuneGossip(c, func(mc *memberlist.Config) {
		mc.ProbeInterval = 200 * time.Millisecond
		mc.ProbeTimeout = 100 * time.Millisecond
		mc.SuspicionMult = 2
		mc.GossipInterval = 50 * time.Millisecond
		mc.GossipToTheDeadTime = gossipDeadTime
		mc.Transport = &gossipTransport{NodeAwareTransport: mc.Transport.(memberlist.NodeAwareTransport), fn: f, self: i}
	})
}

// memberStatus returns what n's gossip says of the member called name.
func memberStatus(n *cluster.Node, name string) (cluster.Member, bool) {
	for _, m := range n.Members() {
		if m.Name == name {
			return m, true
		}
	}
	return cluster.Member{}, false
}

// isVoter reports whether n's Raft configuration has name as a voter.
func isVoter(n *cluster.Node, name string) bool {
	servers, err := n.Servers()
	if err != nil {
		return false
	}
	for _, s := range servers {
		if s.Name == name {
			return s.Voter
		}
	}
	return false
}

// TestLongPartitionHeals cuts one follower off, Raft and gossip alike, for
// longer than GossipToTheDeadTime plus DeadServerTimeout, so that both
// sides stop gossiping to each other and the leader removes it from Raft.
// Without a reconnect loop that never heals. After the heal the node must
// again be an alive gossip member and a Raft voter within a bounded time;
// no tick may have run twice; and the node must not log a Warn per tick
// afterwards.
func TestLongPartitionHeals(t *testing.T) {
	const deadServer = time.Second
	fn := newFaultNet()
	logs := make([]*lineLog, 3)
	c := clustertest.MakeCluster(t, 3, clustertest.Options{Configure: func(i int, cfg *cluster.Config) {
		fn.configure(t, i, cfg)
		fn.configureGossip(t, i, cfg)
		logs[i] = &lineLog{}
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: cfg.NodeName, Level: hclog.Info, Output: logs[i]})
		cfg.DeadServerTimeout = deadServer
		cfg.ReconnectInterval = 250 * time.Millisecond
		cfg.RejoinInterval = time.Second
	}})
	t.Cleanup(fn.heal) // before the nodes shut down
	leader := c.Leader(10 * time.Second)
	iso := (leader + 1) % 3
	isoName, leaderName := c.Nodes[iso].Name(), c.Nodes[leader].Name()

	var mu sync.Mutex
	runs := make(map[int64][]string) // tick -> nodes that ran it
	job := scheduler.Job{Name: "heal", Interval: 100 * time.Millisecond, Func: func(_ context.Context, r scheduler.Run) error {
		mu.Lock()
		runs[r.Tick] = append(runs[r.Tick], r.Node)
		mu.Unlock()
		return nil
	}}
	for _, n := range c.Nodes {
		runScheduler(t, n, job)
	}
	ranOn := func(node string, after int64) int {
		mu.Lock()
		defer mu.Unlock()
		count := 0
		for tick, nodes := range runs {
			for _, n := range nodes {
				if tick > after && n == node {
					count++
				}
			}
		}
		return count
	}
	lastTick := func() int64 {
		mu.Lock()
		defer mu.Unlock()
		var last int64
		for tick := range runs {
			last = max(last, tick)
		}
		return last
	}
	clustertest.Eventually(t, 10*time.Second, func() bool { return ranOn(isoName, 0) > 0 }, "the job never ran on %s before the partition", isoName)

	partitioned := time.Now()
	fn.isolate(iso, 3)

	// The leader removes the isolated node, and both sides hold each other
	// failed for longer than GossipToTheDeadTime, so memberlist no longer
	// gossips between them.
	clustertest.Eventually(t, 30*time.Second, func() bool {
		servers, err := c.Nodes[leader].Servers()
		if err != nil {
			return false
		}
		for _, s := range servers {
			if s.Name == isoName {
				return false
			}
		}
		return len(servers) == 2
	}, "the leader never removed the isolated node %s from Raft", isoName)
	removed := time.Since(partitioned)
	deadLongEnough := func(n *cluster.Node, name string) bool {
		m, ok := memberStatus(n, name)
		return ok && m.Status == cluster.StatusFailed && time.Since(m.Since) > 2*gossipDeadTime
	}
	clustertest.Eventually(t, 30*time.Second, func() bool {
		return deadLongEnough(c.Nodes[leader], isoName) && deadLongEnough(c.Nodes[iso], leaderName)
	}, "the two sides never held each other failed for longer than GossipToTheDeadTime")
	fn.heal()
	healed := time.Now()
	t.Logf("partition lasted %s; the leader removed %s after %s", healed.Sub(partitioned).Round(time.Millisecond), isoName, removed.Round(time.Millisecond))

	// Gossip whole again, on both sides.
	clustertest.Eventually(t, 15*time.Second, func() bool {
		for _, n := range c.Nodes {
			for _, other := range c.Nodes {
				if m, ok := memberStatus(n, other.Name()); !ok || m.Status != cluster.StatusAlive {
					return false
				}
			}
		}
		return true
	}, "gossip never healed after the partition")
	gossipBack := time.Since(healed)
	// A Raft voter again, following the leader.
	clustertest.Eventually(t, 15*time.Second, func() bool {
		l := c.Nodes[leader]
		return isVoter(l, isoName) && c.Nodes[iso].Leader() == l.Leader() && isVoter(c.Nodes[iso], isoName)
	}, "%s never became a Raft voter again after the heal", isoName)
	voterBack := time.Since(healed)
	// Its jobs registered again, so it is ranked first for some ticks, not
	// only a late fallback.
	afterBack := lastTick()
	clustertest.Eventually(t, 10*time.Second, func() bool { return ranOn(isoName, afterBack) > 0 }, "%s ran no tick after it was a voter again", isoName)
	t.Logf("after the heal: alive in gossip everywhere in %s, a Raft voter again in %s", gossipBack.Round(time.Millisecond), voterBack.Round(time.Millisecond))

	// Quiet afterwards: let ten ticks pass for the re-add to settle, then
	// watch a dozen more.
	waitTicks := func(k int64) {
		target := lastTick() + k
		clustertest.Eventually(t, 10*time.Second, func() bool { return lastTick() >= target }, "ticks stopped running after the heal")
	}
	waitTicks(10)
	from := logs[iso].len()
	waitTicks(12)
	for _, line := range logs[iso].from(from) {
		if aboveInfo(line) {
			t.Errorf("%s logged after the heal: %s", isoName, line)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	for tick, nodes := range runs {
		if len(nodes) > 1 {
			t.Errorf("tick %d ran %d times: %s", tick, len(nodes), strings.Join(nodes, ", "))
		}
	}
}
