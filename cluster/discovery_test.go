package cluster_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
)

// fakeDNS answers Join names for test nodes: each node sees its own list
// of addresses for every name, which the test changes at will, as a
// Swarm service's tasks.<service> changes while its tasks start.
type fakeDNS struct {
	mu      sync.Mutex
	answers map[string][]string // node name -> addresses
	lookups atomic.Int64
}

func newFakeDNS() *fakeDNS { return &fakeDNS{answers: make(map[string][]string)} }

func (d *fakeDNS) set(node string, addrs ...string) {
	d.mu.Lock()
	d.answers[node] = addrs
	d.mu.Unlock()
}

// resolver returns the lookup function node uses.
func (d *fakeDNS) resolver(node string) func(context.Context, string) ([]string, error) {
	return func(context.Context, string) ([]string, error) {
		d.lookups.Add(1)
		d.mu.Lock()
		defer d.mu.Unlock()
		return slices.Clone(d.answers[node]), nil
	}
}

// dnsCluster hands out test nodes that find each other through a fakeDNS.
// A DNS answer holds IPs, not ports, so every node gossips on the same
// port, each on its own loopback IP (127.0.0.0/8 is all local on Linux).
type dnsCluster struct {
	dns  *fakeDNS
	port int
	next int
}

func newDNSCluster(t *testing.T) *dnsCluster {
	return &dnsCluster{dns: newFakeDNS(), port: clustertest.FreePorts(t, 1)[0], next: 11}
}

// node returns the config of a new node whose Join is the name
// "tasks.svc", and its IP.
func (c *dnsCluster) node(t *testing.T, name string, expect int) (cluster.Config, string) {
	t.Helper()
	ip := "127.0.0." + itoa(c.next)
	c.next++
	cfg := cluster.Config{
		NodeName:          name,
		BindAddr:          ip + ":" + itoa(c.port),
		RaftAddr:          "127.0.0.1:" + itoa(clustertest.FreePorts(t, 1)[0]),
		Join:              []string{"tasks.svc"},
		BootstrapExpect:   expect,
		Logger:            clustertest.Logger(name),
		ReconcileInterval: 200 * time.Millisecond,
		ReconnectInterval: 200 * time.Millisecond,
		RejoinInterval:    500 * time.Millisecond,
	}
	cluster.SetLookupHost(&cfg, c.dns.resolver(name))
	return cfg, ip
}

type started struct {
	n   *cluster.Node
	err error
}

func startAsync(ctx context.Context, cfg cluster.Config) <-chan started {
	ch := make(chan started, 1)
	go func() {
		n, err := cluster.Start(ctx, cfg)
		ch <- started{n, err}
	}()
	return ch
}

// TestJoinThatSeesOnlyItselfKeepsRetrying is the Swarm start: replicas
// started together each resolve tasks.<service> to themselves alone.
// Reaching oneself is no join: both keep resolving until the name shows
// the other, then form one cluster.
func TestJoinThatSeesOnlyItselfKeepsRetrying(t *testing.T) {
	dc := newDNSCluster(t)
	dns := dc.dns
	a, ipA := dc.node(t, "a", 2)
	b, ipB := dc.node(t, "b", 2)
	dns.set("a", ipA)
	dns.set("b", ipB)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	chA, chB := startAsync(ctx, a), startAsync(ctx, b)
	var nodes []*cluster.Node
	t.Cleanup(func() {
		for _, n := range nodes {
			n.Shutdown(context.Background())
		}
	})

	// Each sees only itself: neither may think it joined, and both keep
	// resolving the name.
	before := dns.lookups.Load()
	clustertest.Eventually(t, 10*time.Second, func() bool { return dns.lookups.Load() >= before+6 }, "the nodes stopped resolving the join name while they had seen only themselves")
	select {
	case r := <-chA:
		nodes = append(nodes, r.n)
		t.Fatalf("a started (err %v) before it had seen b", r.err)
	case r := <-chB:
		nodes = append(nodes, r.n)
		t.Fatalf("b started (err %v) before it had seen a", r.err)
	default:
	}

	// The name now resolves to both tasks.
	dns.set("a", ipA, ipB)
	dns.set("b", ipA, ipB)
	for _, ch := range []<-chan started{chA, chB} {
		r := <-ch
		if r.err != nil {
			t.Fatalf("start after the name showed both nodes: %v", r.err)
		}
		nodes = append(nodes, r.n)
	}
	for _, n := range nodes {
		if s := mustServers(t, n); len(s) != 2 {
			t.Fatalf("%s sees %d servers, want 2: %+v", n.Name(), len(s), s)
		}
	}
}

// TestJoinThatSeesOnlyItselfMayBootstrapAlone: with BootstrapExpect 1 a
// node whose join name resolves to itself forms its cluster at once.
func TestJoinThatSeesOnlyItselfMayBootstrapAlone(t *testing.T) {
	dc := newDNSCluster(t)
	a, ip := dc.node(t, "solo", 1)
	dc.dns.set("solo", ip)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	n, err := cluster.Start(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	if !n.IsLeader() {
		t.Fatal("single node is not its own leader")
	}
}

// TestRejoinFindsNewAddressOfJoinName: a running cluster re-resolves its
// join name and joins an address that appeared in it, though nothing
// contacts the cluster from there: here a node that may not bootstrap and
// whose own lookups show only itself, as a replaced task could.
func TestRejoinFindsNewAddressOfJoinName(t *testing.T) {
	dc := newDNSCluster(t)
	dns := dc.dns
	a, ipA := dc.node(t, "a", 2)
	b, ipB := dc.node(t, "b", 2)
	newcomer, ipC := dc.node(t, "c", 0)
	dns.set("a", ipA, ipB)
	dns.set("b", ipA, ipB)
	dns.set("c", ipC)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	chA, chB := startAsync(ctx, a), startAsync(ctx, b)
	var nodes []*cluster.Node
	t.Cleanup(func() {
		for _, n := range nodes {
			n.Shutdown(context.Background())
		}
	})
	for _, ch := range []<-chan started{chA, chB} {
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		nodes = append(nodes, r.n)
	}
	chC := startAsync(ctx, newcomer)
	// Long enough for c to have tried, and for a and b to have re-resolved
	// without finding it.
	before := dns.lookups.Load()
	clustertest.Eventually(t, 10*time.Second, func() bool { return dns.lookups.Load() >= before+6 }, "no lookups")
	select {
	case r := <-chC:
		t.Fatalf("c started (err %v) though nobody could know it", r.err)
	default:
	}

	appeared := time.Now()
	dns.set("a", ipA, ipB, ipC)
	r := <-chC
	if r.err != nil {
		t.Fatalf("c never joined after its address appeared in a's lookups: %v", r.err)
	}
	nodes = append(nodes, r.n)
	t.Logf("c joined %s after its address appeared (RejoinInterval %s)", time.Since(appeared).Round(time.Millisecond), a.RejoinInterval)
	clustertest.Eventually(t, 10*time.Second, func() bool { return len(mustServers(t, nodes[0])) == 3 }, "c never became a Raft server")
}

// fastGossip shortens memberlist's failure detection for a test node.
func fastGossip(cfg *cluster.Config) {
	cluster.SetTuneGossip(cfg, func(mc *memberlist.Config) {
		mc.ProbeInterval = 200 * time.Millisecond
		mc.ProbeTimeout = 100 * time.Millisecond
		mc.SuspicionMult = 2
		mc.GossipInterval = 50 * time.Millisecond
	})
}

// TestRescheduledUnderStableNameAtNewIP is a Swarm task rescheduled with a
// stable hostname ({{.Service.Name}}-{{.Task.Slot}}) and its slot's volume:
// the same NodeName and DataDir come back at a new IP, found only through
// the service name. The cluster ends with the same three voters, the
// moved one at its new address, and no fourth member.
func TestRescheduledUnderStableNameAtNewIP(t *testing.T) {
	dc := newDNSCluster(t)
	var cfgs []cluster.Config
	var ips []string
	for _, name := range []string{"svc-1", "svc-2", "svc-3"} {
		cfg, ip := dc.node(t, name, 3)
		cfg.DataDir = t.TempDir()
		fastGossip(&cfg)
		cfgs = append(cfgs, cfg)
		ips = append(ips, ip)
	}
	for _, cfg := range cfgs {
		dc.dns.set(cfg.NodeName, ips...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	var chs []<-chan started
	for _, cfg := range cfgs {
		chs = append(chs, startAsync(ctx, cfg))
	}
	nodes := make([]*cluster.Node, 3)
	t.Cleanup(func() {
		for _, n := range nodes {
			if n != nil {
				n.Shutdown(context.Background())
			}
		}
	})
	for i, ch := range chs {
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		nodes[i] = r.n
	}
	moved := 0
	for i, n := range nodes {
		if !n.IsLeader() {
			moved = i
		}
	}
	oldRaft := nodes[moved].RaftAddr()
	if err := clustertest.Kill(nodes[moved]); err != nil {
		t.Fatal(err)
	}
	nodes[moved] = nil

	// The task comes back in its slot: same name and volume, new IP.
	again, newIP := dc.node(t, cfgs[moved].NodeName, 3)
	again.DataDir = cfgs[moved].DataDir
	fastGossip(&again)
	ips[moved] = newIP
	for _, cfg := range cfgs {
		dc.dns.set(cfg.NodeName, ips...)
	}
	killed := time.Now()
	n, err := cluster.Start(ctx, again)
	if err != nil {
		t.Fatalf("the rescheduled task never became ready: %v", err)
	}
	nodes[moved] = n
	t.Logf("rescheduled task ready %s after the kill", time.Since(killed).Round(time.Millisecond))
	newRaft := nodes[moved].RaftAddr()
	if newRaft == oldRaft {
		t.Fatalf("the rescheduled task kept its Raft address %s", oldRaft)
	}
	clustertest.Eventually(t, 20*time.Second, func() bool {
		for _, n := range nodes {
			servers, err := n.Servers()
			if err != nil || len(servers) != 3 {
				return false
			}
			for _, s := range servers {
				if !s.Voter || (s.Name == again.NodeName && s.Address != newRaft) {
					return false
				}
			}
		}
		return true
	}, "the cluster never settled on three voters with %s at its new address %s", again.NodeName, newRaft)
}
