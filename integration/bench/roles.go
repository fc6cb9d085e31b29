package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ehsaniara/gointerlock"
	redisv8 "github.com/go-redis/redis/v8"
	"github.com/hashicorp/go-hclog"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/scheduler"
)

// Flags of the child roles (ignored by the orchestrator).
var (
	fIndex    = flag.Int("i", 0, "role: replica index")
	fGossip   = flag.String("gossip-ports", "", "role: gossip ports of all Interlock nodes")
	fRaftPort = flag.Int("raft-port", 0, "role: this Interlock node's Raft port")
	fPeer     = flag.String("peer-ports", "", "role: etcd peer ports of all members")
	fClient   = flag.String("client-ports", "", "role: etcd client ports of all members")
	fDir      = flag.String("dir", "", "role: data directory")
	fJobs     = flag.String("jobs", "", "role: name:interval:count,...")
	fPrint    = flag.Bool("print-runs", true, "role: print a RUN line per run")
	fTTL      = flag.Int("ttl", 3, "role: etcd session TTL in seconds")
	fRedis    = flag.String("redis", "", "role: redis host:port")
	fStore    = flag.String("logstore", "bolt", "role: an Interlock node's LogStore (bolt or wal)")
	fEtcdEq   = flag.Bool("etcd-equal-timing", false, "role: run an etcd member on Interlock's Raft timing (etcdEqualTiming)")
	// S4 turns the LEADER lines off: polling for them every 20 ms is the
	// bench's own cost, and gointerlock replicas have no leader to poll.
	fReportLeader = flag.Bool("report-leader", true, "role: print LEADER lines")
	// With a partitioner (faultproxy.go) in front, a replica listens on
	// these ports and advertises the proxy's (the ports above).
	fRaftListen   = flag.Int("raft-listen-port", 0, "role: port to listen on for Raft when it differs from -raft-port")
	fPeerListen   = flag.Int("peer-listen-port", 0, "role: port this etcd member listens on for peers when it differs from its -peer-ports entry")
	fClientListen = flag.Int("client-listen-port", 0, "role: port this etcd member listens on for clients when it differs from its -client-ports entry")
)

type jobDef struct {
	name     string
	interval time.Duration
}

// parseJobDefs parses name:interval:count; count > 1 gives name-0..name-N.
func parseJobDefs(s string) []jobDef {
	var out []jobDef
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		p := strings.Split(e, ":")
		d, err := time.ParseDuration(p[1])
		if err != nil {
			fatalf("bad -jobs %q: %v", e, err)
		}
		n := 1
		if len(p) > 2 {
			n, _ = strconv.Atoi(p[2])
		}
		if n == 1 {
			out = append(out, jobDef{p[0], d})
			continue
		}
		for i := 0; i < n; i++ {
			out = append(out, jobDef{p[0] + "-" + strconv.Itoa(i), d})
		}
	}
	return out
}

func ints(s string) []int {
	var out []int
	for _, p := range strings.Split(s, ",") {
		if v, err := strconv.Atoi(strings.TrimSpace(p)); err == nil {
			out = append(out, v)
		}
	}
	return out
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(2)
}

func runRole(role, name string) {
	signal.Ignore(syscall.SIGINT) // the orchestrator stops its children itself
	switch role {
	case "interlock-node":
		roleInterlock(name)
	case "interlock-lock-node":
		roleInterlockLock(name)
	case "floor":
		roleFloor()
	case "etcd-node":
		roleEtcd(name)
	case "gointerlock-node":
		roleGointerlock(name)
	default:
		fatalf("unknown role %q", role)
	}
}

// roleInterlock is one Interlock replica: a cluster node with bolt on disk
// and a scheduler holding the -jobs.
func roleInterlock(name string) {
	io := newChildIO()
	node := startChildNode(name)
	s := scheduler.New(scheduler.Options{Cluster: node})
	for _, j := range parseJobDefs(*fJobs) {
		err := s.Add(scheduler.Job{Name: j.name, Interval: j.interval, Func: func(_ context.Context, r scheduler.Run) error {
			if *fPrint {
				io.run(r.Job, r.Tick, time.Now(), r.Token)
			}
			return nil
		}})
		if err != nil {
			fatalf("add: %v", err)
		}
	}
	sctx, scancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = s.Run(sctx) }()
	profileChild()
	io.line("READY")
	go reportLeader(io, node.IsLeader, sctx)
	for range commands() {
		// Only EOF ends this role; S3 fails it with signals (SIGKILL,
		// SIGSTOP) from outside, as a crash or a pause would.
	}
	scancel()
	wg.Wait()
	_ = node.Shutdown(context.Background())
}

// startChildNode starts this child's Interlock node from the role flags.
func startChildNode(name string) *cluster.Node {
	store, err := cluster.ParseLogStore(*fStore)
	if err != nil {
		fatalf("-logstore: %v", err)
	}
	gp := ints(*fGossip)
	var join []string
	for j, p := range gp {
		if j != *fIndex {
			join = append(join, "127.0.0.1:"+strconv.Itoa(p))
		}
	}
	var ln net.Listener
	if *fRaftListen != 0 {
		if ln, err = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(*fRaftListen)); err != nil {
			fatalf("listen: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	node, err := cluster.Start(ctx, cluster.Config{
		RaftListener:    ln,
		NodeName:        name,
		BindAddr:        "127.0.0.1:" + strconv.Itoa(gp[*fIndex]),
		RaftAddr:        "127.0.0.1:" + strconv.Itoa(*fRaftPort),
		DataDir:         *fDir,
		LogStore:        store,
		Join:            join,
		BootstrapExpect: len(gp),
		Logger:          hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: os.Stderr}),
	})
	cancel()
	if err != nil {
		fatalf("start: %v", err)
	}
	return node
}

// roleInterlockLock is one Interlock node with no scheduler, driven over
// stdin for S3's lock failover: "hold" takes the lock "held" with a 10 s
// lease, "loop" starts a Lock+Unlock loop on "loop" with no per-call
// timeout, "try" tries TryLock on "held". Successes are RUN lines (jobs
// "held", "pair" and "try-ok") so the bench's recorder sees them.
func roleInterlockLock(name string) {
	io := newChildIO()
	node := startChildNode(name)
	ctx, cancel := context.WithCancel(context.Background())
	io.line("READY")
	go reportLeader(io, node.IsLeader, ctx)
	for c := range commands() {
		switch c {
		case "hold":
			if _, err := node.Lock(ctx, "held", 10*time.Second); err == nil {
				io.run("held", 0, time.Now(), 0)
			}
		case "loop":
			go func() {
				for ctx.Err() == nil {
					l, err := node.Lock(ctx, "loop", 10*time.Second)
					if err == nil {
						err = l.Unlock(ctx)
					}
					if err != nil {
						time.Sleep(5 * time.Millisecond)
						continue
					}
					io.run("pair", 0, time.Now(), 0)
				}
			}()
		case "try":
			go func() {
				tctx, tcancel := context.WithTimeout(ctx, time.Second)
				defer tcancel()
				if l, err := node.TryLock(tctx, "held", 10*time.Second); err == nil {
					io.run("try-ok", 0, time.Now(), l.Token())
				}
			}()
		}
	}
	cancel()
	_ = node.Shutdown(context.Background())
}

// roleFloor is the bench binary doing nothing: S4 subtracts its RSS and CPU
// as the floor every replica process pays for this shared binary.
func roleFloor() {
	io := newChildIO()
	io.line("READY")
	for range commands() {
	}
}

func reportLeader(io *childIO, isLeader func() bool, ctx context.Context) {
	if !*fReportLeader {
		return
	}
	last := -1
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		v := 0
		if isLeader() {
			v = 1
		}
		if v != last {
			io.line("LEADER %d", v)
			last = v
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// etcdMemberConfig is member i of a 3-member cluster on loopback, fsync on.
func etcdMemberConfig(i int, peerPorts, clientPorts []int, dir string) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = fmt.Sprintf("m%d", i)
	cfg.Dir = dir
	u := func(p int) url.URL { x, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(p)); return *x }
	cfg.ListenPeerUrls = []url.URL{u(peerPorts[i])}
	cfg.AdvertisePeerUrls = []url.URL{u(peerPorts[i])}
	cfg.ListenClientUrls = []url.URL{u(clientPorts[i])}
	cfg.AdvertiseClientUrls = []url.URL{u(clientPorts[i])}
	var ic []string
	for j, p := range peerPorts {
		ic = append(ic, fmt.Sprintf("m%d=http://127.0.0.1:%d", j, p))
	}
	cfg.InitialCluster = strings.Join(ic, ",")
	cfg.InitialClusterToken = "bench"
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{"stderr"}
	cfg.WarningUnaryRequestDuration = 300 * time.Millisecond
	cfg.UnsafeNoFsync = false
	return cfg
}

// etcdEqualTiming puts an etcd member on Interlock's default Raft timing,
// so that the two are compared on equal timeouts. Interlock has a
// follower start an election once the leader has been silent for a random
// [HeartbeatTimeout, 1.5×HeartbeatTimeout) (cluster/contactcheck.go), and
// its leader, which runs at twice that HeartbeatTimeout
// (cluster/cadence.go), send heartbeats every 2×HeartbeatTimeout/10 to /5;
// etcd has a follower wait a random [ElectionMs, 2×ElectionMs) of silence
// and its leader send one every TickMs. So ElectionMs is Interlock's
// HeartbeatTimeout, the shortest silence either accepts, and TickMs the
// shortest gap between Interlock's heartbeats, a fifth of it, which is
// also the longest tick etcd accepts for that election timeout (etcd's
// defaults are 1000 and 100).
func etcdEqualTiming(cfg *embed.Config) {
	cfg.ElectionMs = uint(cluster.DefaultHeartbeatTimeout / time.Millisecond)
	cfg.TickMs = uint(2 * cluster.DefaultHeartbeatTimeout / 10 / time.Millisecond)
}

// etcdTimingText describes the two etcd timings for the report.
func etcdTimingText() string {
	eq := embed.NewConfig()
	etcdEqualTiming(eq)
	def := embed.NewConfig()
	return fmt.Sprintf("*default timing* is etcd's own (heartbeat every %d ms, election timeout %d ms); *equal timing* is Interlock's (heartbeat every %d ms, the shortest gap between Interlock's leader's heartbeats, and election timeout %d ms, from cluster.DefaultHeartbeatTimeout %s)",
		def.TickMs, def.ElectionMs, eq.TickMs, eq.ElectionMs, cluster.DefaultHeartbeatTimeout)
}

func etcdEndpoints(clientPorts []int) []string {
	var eps []string
	for _, p := range clientPorts {
		eps = append(eps, "127.0.0.1:"+strconv.Itoa(p))
	}
	return eps
}

func newEtcdClient(eps []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   eps,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
}

// roleEtcd is one replica with etcd embedded: an etcd member plus the usual
// "leader runs all" recipe (concurrency.Election; the elected replica runs
// epoch-aligned local tickers for every job).
func roleEtcd(name string) {
	io := newChildIO()
	pp, cp := ints(*fPeer), ints(*fClient)
	cfg := etcdMemberConfig(*fIndex, pp, cp, *fDir)
	if *fEtcdEq {
		etcdEqualTiming(cfg)
	}
	listen := func(p int) url.URL { x, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(p)); return *x }
	if *fPeerListen != 0 {
		cfg.ListenPeerUrls = []url.URL{listen(*fPeerListen)}
	}
	if *fClientListen != 0 {
		cfg.ListenClientUrls = []url.URL{listen(*fClientListen)}
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fatalf("start etcd: %v", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		fatalf("etcd member not ready")
	}
	cli, err := newEtcdClient(etcdEndpoints(cp))
	if err != nil {
		fatalf("client: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	jobs := parseJobDefs(*fJobs)
	go electionLoop(ctx, cli, "/bench/election", name, *fTTL, jobs, func(j string, tick int64, start time.Time) {
		if *fPrint {
			io.run(j, tick, start, 0)
		}
	}, func(h bool) {
		if h {
			io.line("HOLDER 1")
		} else {
			io.line("HOLDER 0")
		}
	})
	io.line("READY")
	go reportLeader(io, func() bool { return e.Server.Leader() == e.Server.MemberID() }, ctx)
	for range commands() {
		// Only EOF (the bench closing stdin) ends these roles.
	}
	cancel()
	cli.Close()
	e.Close()
}

// electionLoop campaigns; while elected, runs every job on an epoch-aligned
// local ticker; on losing the session, stops them and campaigns again.
func electionLoop(ctx context.Context, cli *clientv3.Client, key, name string, ttl int, jobs []jobDef, run func(job string, tick int64, start time.Time), holder func(bool)) {
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		el := concurrency.NewElection(sess, key)
		if err := el.Campaign(ctx, name); err != nil {
			sess.Close()
			time.Sleep(100 * time.Millisecond)
			continue
		}
		holder(true)
		lctx, lcancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for _, j := range jobs {
			wg.Add(1)
			go func(j jobDef) {
				defer wg.Done()
				epochTicker(lctx, j.interval, func(tick int64, start time.Time) { run(j.name, tick, start) })
			}(j)
		}
		select {
		case <-sess.Done():
		case <-ctx.Done():
		}
		lcancel()
		wg.Wait()
		holder(false)
		sess.Close()
	}
}

// epochTicker calls f for every tick k (at k×d after the Unix epoch) after
// it starts, until ctx ends, skipping ticks it fell behind on.
func epochTicker(ctx context.Context, d time.Duration, f func(tick int64, start time.Time)) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		now := time.Now()
		k := now.UnixNano()/int64(d) + 1
		t.Reset(time.Until(time.Unix(0, k*int64(d))))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f(k, time.Now())
	}
}

// roleGointerlock is one gointerlock v1.1.1 replica: every job is a
// gointerlock.GoInterval with the same Name on every replica and one Redis.
// It cannot be stopped without log.Fatalf (cancelling its ctx in Redis mode
// is fatal), so EOF on stdin exits the process.
func roleGointerlock(name string) {
	io := newChildIO()
	rdb := redisv8.NewClient(&redisv8.Options{Addr: *fRedis, PoolSize: 16})
	for _, j := range parseJobDefs(*fJobs) {
		j := j
		g := &gointerlock.GoInterval{
			Name:           j.name,
			Interval:       j.interval,
			RedisConnector: rdb,
			Arg: func() {
				if *fPrint {
					io.run(j.name, -1, time.Now(), 0)
				}
			},
		}
		go func() {
			if err := g.Run(context.Background()); err != nil {
				fatalf("gointerlock: %v", err)
			}
		}()
	}
	io.line("READY")
	for range commands() {
		// Only EOF (the bench closing stdin) ends these roles.
	}
	os.Exit(0)
}
