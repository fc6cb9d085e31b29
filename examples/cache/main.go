// Command cache shows an HTTP server whose cached value is refreshed on a
// schedule by a scheduler.Scheduler job, and how to shut such a server down
// gracefully.
//
// The cached value is a "report" carrying a generation counter and the time
// it was refreshed; GET / returns it as JSON (503 until the first refresh).
// The "refresh-report" job rebuilds it every -interval.
//
// By default the scheduler runs locally (no cluster). With -cluster the
// process also starts a single-node Interlock cluster (BootstrapExpect 1,
// in-memory Raft) and hands it to the scheduler, so each refresh is granted
// through Raft and carries a fencing token. The cache keeps the highest
// token it accepted and refuses a write with a lower one, which is how a
// shared store protects itself from a stale run. With several replicas, the
// job runs on one replica per tick, so in a real deployment the report
// would live in storage the replicas share rather than in each process.
//
// On SIGINT or SIGTERM (or after -for) it stops in order: the HTTP server
// first (http.Server.Shutdown lets requests in flight finish), then the
// scheduler (a refresh in progress sees its ctx cancelled and is waited
// for), then the cluster node (node.Shutdown leaves the cluster cleanly).
//
// Run it locally:
//
//	go run ./examples/cache
//	curl -s http://127.0.0.1:8080/
//
// or as a one-node cluster, stopping by itself after 10 s:
//
//	go run ./examples/cache -cluster -for 10s
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/scheduler"
)

// Report is the cached value.
type Report struct {
	// Generation counts refreshes accepted by this cache.
	Generation uint64 `json:"generation"`
	// RefreshedAt is when the refresh ran.
	RefreshedAt time.Time `json:"refreshed_at"`
	// Tick and ScheduledAt identify the scheduler tick that refreshed it.
	Tick        int64     `json:"tick"`
	ScheduledAt time.Time `json:"scheduled_at"`
	// Node and Token are set in cluster mode: the node that ran the refresh
	// and the run's fencing token.
	Node  string `json:"node,omitempty"`
	Token uint64 `json:"token,omitempty"`
}

// cache holds the latest report. With a cluster it also fences writes by
// token, rejecting a refresh older than the one it already holds.
type cache struct {
	mu        sync.RWMutex
	report    Report
	ready     bool
	lastToken uint64
}

var errStale = errors.New("stale refresh rejected")

func (c *cache) store(r Report) (Report, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Token != 0 && r.Token <= c.lastToken {
		return c.report, fmt.Errorf("%w: token %d, cache holds %d", errStale, r.Token, c.lastToken)
	}
	c.lastToken = r.Token
	r.Generation = c.report.Generation + 1
	c.report = r
	c.ready = true
	return r, nil
}

func (c *cache) load() (Report, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.report, c.ready
}

func (c *cache) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	report, ok := c.load()
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]string{"error": "report not refreshed yet; retry after the first tick"})
		return
	}
	json.NewEncoder(w).Encode(report)
}

// refresh builds a new report. A real service would query a database or
// another service here, honouring ctx.
func (c *cache) refresh(ctx context.Context, run scheduler.Run) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r, err := c.store(Report{
		RefreshedAt: time.Now(),
		Tick:        run.Tick,
		ScheduledAt: run.At,
		Node:        run.Node,
		Token:       run.Token,
	})
	if err != nil {
		return err
	}
	fmt.Printf("refreshed report generation=%d tick=%d node=%q token=%d at=%s\n",
		r.Generation, r.Tick, r.Node, r.Token, r.ScheduledAt.Format("15:04:05.000"))
	return nil
}

type options struct {
	addr      string
	interval  time.Duration
	runFor    time.Duration
	clustered bool
	nodeName  string
	bindAddr  string
	raftAddr  string
	logLevel  string
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:8080", "HTTP listen address")
	flag.DurationVar(&o.interval, "interval", time.Second, "how often the report is refreshed")
	flag.DurationVar(&o.runFor, "for", 0, "stop after this long (0 runs until SIGINT or SIGTERM)")
	flag.BoolVar(&o.clustered, "cluster", false, "start a single-node Interlock cluster and schedule through it")
	flag.StringVar(&o.nodeName, "node", "cache1", "node name, with -cluster")
	flag.StringVar(&o.bindAddr, "bind-addr", "127.0.0.1:7946", "gossip address (TCP and UDP), with -cluster")
	flag.StringVar(&o.raftAddr, "raft-addr", "127.0.0.1:7947", "Raft and RPC address, with -cluster")
	flag.StringVar(&o.logLevel, "log-level", "warn", "cluster log level: trace, debug, info, warn, error")
	flag.Parse()

	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "cache:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.runFor > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.runFor)
		defer cancel()
	}

	// Listen before anything else, so a busy port fails fast.
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen on -addr %s: %w", o.addr, err)
	}
	defer ln.Close()

	var node *cluster.Node
	if o.clustered {
		level := hclog.LevelFromString(o.logLevel)
		if level == hclog.NoLevel {
			return fmt.Errorf("-log-level %q: use trace, debug, info, warn or error", o.logLevel)
		}
		startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		node, err = cluster.Start(startCtx, cluster.Config{
			NodeName:        o.nodeName,
			BindAddr:        o.bindAddr,
			RaftAddr:        o.raftAddr,
			BootstrapExpect: 1,
			Logger:          hclog.New(&hclog.LoggerOptions{Name: "interlock", Level: level}),
		})
		cancel()
		if err != nil {
			return fmt.Errorf("start cluster node: %w", err)
		}
		fmt.Printf("cluster node %s ready: gossip %s, raft %s, leader %s\n",
			node.Name(), node.GossipAddr(), node.RaftAddr(), node.Leader())
		defer func() {
			// Reached on every return after Start; on the normal path the
			// scheduler and HTTP server are stopped by then.
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := node.Shutdown(sctx); err != nil {
				fmt.Fprintln(os.Stderr, "cache: node shutdown:", err)
			}
		}()
	}

	c := &cache{}
	sched := scheduler.New(scheduler.Options{Cluster: node}) // node nil: local
	if err := sched.Add(scheduler.Job{
		Name:     "refresh-report",
		Interval: o.interval,
		Func:     c.refresh,
	}); err != nil {
		return err
	}
	schedCtx, stopSched := context.WithCancel(context.Background())
	defer stopSched()
	schedDone := make(chan struct{})
	go func() {
		defer close(schedDone)
		sched.Run(schedCtx) // returns nil once schedCtx ends and runs finish
	}()

	srv := &http.Server{Handler: c, ReadHeaderTimeout: 5 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	mode := "local"
	if node != nil {
		mode = "cluster"
	}
	fmt.Printf("serving the report on http://%s/ (%s mode, refresh every %s)\n", ln.Addr(), mode, o.interval)

	var runErr error
	select {
	case <-ctx.Done():
		fmt.Println("shutting down")
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	}

	// 1. Stop taking requests and let those in flight finish.
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := srv.Shutdown(shutCtx); err != nil {
		fmt.Fprintln(os.Stderr, "cache: http shutdown:", err)
	}
	cancel()
	// 2. Stop the scheduler and wait for a refresh in progress.
	stopSched()
	<-schedDone
	// 3. The deferred node.Shutdown leaves the cluster.
	if st, ok := sched.Stats()["refresh-report"]; ok {
		fmt.Printf("scheduler stopped: runs=%d skipped=%d errors=%d claim-failures=%d\n", st.Runs, st.Skipped, st.Errors, st.ClaimFailures)
	}
	return runErr
}
