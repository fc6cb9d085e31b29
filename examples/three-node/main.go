// Command three-node runs a three-node Interlock cluster on 127.0.0.1 in one
// process and shows that a job runs exactly once per tick across the nodes.
//
// It starts three cluster nodes (BootstrapExpect 3), each on its own free
// gossip and Raft ports and listing the other two in Join, with its Raft log
// in a temporary directory that is removed on exit. Each node runs a
// scheduler.Scheduler with the same job, "report", so the three replicas
// share its ticks: for every tick one node wins the claim through Raft and
// runs it, with that grant's Raft index as its fencing token. Each run
// prints a line such as
//
//	run job=report tick=1764104412 node=node1 token=42 at=21:40:12.000
//
// After -for (measured from the first run, when the schedulers are under
// way) or on SIGINT/SIGTERM, it stops the schedulers, shuts the nodes
// down and prints, as its last line,
//
//	ticks=N runs=N duplicates=0 missed=0
//
// counted from the recorded runs: ticks is the number of tick indexes from
// the first tick after the first run up to the last tick
// scheduled at least one interval before the stop, so each counted tick had
// its full start window; runs is the runs seen for those ticks; duplicates is
// the runs of a counted tick beyond its first; missed is the counted ticks
// that never ran. The exit status is 1 if duplicates or missed is not zero.
//
// Run it with
//
//	go run ./examples/three-node            # 15 s at 1 s ticks
//	go run ./examples/three-node -for 1m -interval 500ms -log-level info
//	go run ./examples/three-node -dev-tls   # mutual TLS between the nodes
//
// or `make demo`. Cluster logs go to stderr at -log-level (default warn).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/scheduler"
)

const (
	nodes   = 3
	jobName = "report"
)

func main() {
	interval := flag.Duration("interval", time.Second, "the job's interval")
	runFor := flag.Duration("for", 15*time.Second, "how long the schedulers run before the demo stops")
	logLevel := flag.String("log-level", "warn", "cluster log level: trace, debug, info, warn, error, off")
	flag.Parse()

	code, err := run(*interval, *runFor, *logLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "three-node:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// run returns the exit code, or an error if the demo could not run at all.
// It returns rather than exits so that its deferred cleanups run.
func run(interval, runFor time.Duration, logLevel string) (int, error) {
	if interval <= 0 {
		return 1, fmt.Errorf("-interval is %s; it must be greater than zero", interval)
	}
	if runFor <= 0 {
		return 1, fmt.Errorf("-for is %s; it must be greater than zero", runFor)
	}
	level := hclog.LevelFromString(logLevel)
	if level == hclog.NoLevel {
		return 1, fmt.Errorf("-log-level %q: use trace, debug, info, warn, error or off", logLevel)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dataDir, err := os.MkdirTemp("", "interlock-three-node-*")
	if err != nil {
		return 1, fmt.Errorf("create data dir: %w", err)
	}
	defer os.RemoveAll(dataDir)

	// Cluster logs go through a gate that is closed once the nodes are shut
	// down: memberlist's Shutdown does not wait for a probe in flight, which
	// can still log a line (at Debug) after Node.Shutdown returns, and the
	// summary must stay the last line at every -log-level.
	logs := &gatedWriter{w: os.Stderr}
	defer logs.close()
	cfgs, err := configs(dataDir, level, logs)
	if err != nil {
		return 1, err
	}
	if *devTLS {
		if err := useDevTLS(cfgs); err != nil {
			return 1, err
		}
	}
	fmt.Printf("starting %d nodes on 127.0.0.1 (data in %s)\n", nodes, dataDir)
	cl, err := startCluster(ctx, cfgs)
	// Shut down whatever started, also on the error paths below.
	defer func() { shutdown(cl) }()
	if err != nil {
		return 1, err
	}
	for _, n := range cl {
		fmt.Printf("node %s ready: gossip %s raft %s leader %s\n", n.Name(), n.GossipAddr(), n.RaftAddr(), n.Leader())
	}

	rec := &recorder{runs: make(map[int64][]scheduler.Run), first: make(chan struct{})}
	schedCtx, stopScheds := context.WithCancel(context.Background())
	defer stopScheds()
	var schedsDone sync.WaitGroup
	for _, n := range cl {
		s := scheduler.New(scheduler.Options{Cluster: n})
		if err := s.Add(scheduler.Job{Name: jobName, Interval: interval, Func: rec.record}); err != nil {
			return 1, err
		}
		schedsDone.Add(1)
		go func() {
			defer schedsDone.Done()
			s.Run(schedCtx) // returns nil once schedCtx ends and runs finish
		}()
	}
	stopSchedulers := func() {
		stopScheds()
		schedsDone.Wait()
	}

	// The schedulers are under way once a tick has run: from then on at
	// least one of them claims every tick, and each claims even a tick
	// ranked for a replica that has not registered yet, after its fallback
	// delay.
	if err := rec.waitFirst(ctx, 30*time.Second); err != nil {
		stopSchedulers()
		return 1, err
	}
	startedAt := time.Now()
	first := scheduler.NextTick(interval, startedAt)
	fmt.Printf("schedulers started at %s; first counted tick %d at %s; running for %s\n",
		clock(startedAt), first, clock(scheduler.TickAt(interval, first)), runFor)

	timer := time.NewTimer(runFor)
	select {
	case <-timer.C:
	case <-ctx.Done():
		timer.Stop()
		fmt.Println("signal received, stopping")
	}
	stopAt := time.Now()
	// The last tick that had its whole start window (one interval, the
	// default StartDeadline) before the stop.
	last := scheduler.TickIndex(interval, stopAt.Add(-interval))

	stopSchedulers()
	shutdown(cl)
	cl = nil
	logs.close()

	s := rec.summarize(first, last)
	if s.outside > 0 {
		fmt.Printf("%d run(s) outside the counted ticks %d..%d were not counted\n", s.outside, first, last)
	}
	fmt.Printf("runs per node: %s\n", s.perNode)
	if s.tokenErrors > 0 {
		fmt.Printf("WARNING: %d counted run(s) had a fencing token not above the previous tick's\n", s.tokenErrors)
	}
	fmt.Printf("ticks=%d runs=%d duplicates=%d missed=%d\n", s.ticks, s.runs, s.duplicates, s.missed)
	if s.duplicates > 0 || s.missed > 0 || s.tokenErrors > 0 {
		return 1, nil
	}
	return 0, nil
}

// configs builds the three node configs, each on free gossip and Raft ports
// and listing the others in Join.
func configs(dataDir string, level hclog.Level, logs io.Writer) ([]cluster.Config, error) {
	ports, err := freePorts(2 * nodes)
	if err != nil {
		return nil, err
	}
	gossip, raft := ports[:nodes], ports[nodes:]
	cfgs := make([]cluster.Config, nodes)
	for i := range cfgs {
		name := "node" + strconv.Itoa(i+1)
		var join []string
		for j, p := range gossip {
			if j != i {
				join = append(join, addr(p))
			}
		}
		cfgs[i] = cluster.Config{
			NodeName:        name,
			BindAddr:        addr(gossip[i]),
			RaftAddr:        addr(raft[i]),
			Join:            join,
			BootstrapExpect: nodes,
			DataDir:         filepath.Join(dataDir, name),
			Logger:          hclog.New(&hclog.LoggerOptions{Name: name, Level: level, Output: logs}),
		}
	}
	return cfgs, nil
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// freePorts returns n distinct ports that were free on 127.0.0.1 for both
// TCP and UDP (gossip needs both on one port). All are held until all are
// found so none repeats; another process could still take one before the
// nodes bind it, in which case Start fails and names the address.
func freePorts(n int) ([]int, error) {
	var ports []int
	var held []func()
	defer func() {
		for _, release := range held {
			release()
		}
	}()
	for attempts := 0; len(ports) < n; attempts++ {
		if attempts > 100 {
			return nil, errors.New("could not find free ports on 127.0.0.1 free for both TCP and UDP")
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", addr(port))
		if err != nil {
			ln.Close()
			continue // UDP side taken: try another
		}
		held = append(held, func() { ln.Close(); pc.Close() })
		ports = append(ports, port)
	}
	return ports, nil
}

// startCluster starts the nodes concurrently, since none can finish Start
// until BootstrapExpect nodes see each other. On error it returns the nodes
// that did start, for the caller to shut down.
func startCluster(ctx context.Context, cfgs []cluster.Config) ([]*cluster.Node, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	started := make([]*cluster.Node, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		wg.Go(func() {
			started[i], errs[i] = cluster.Start(ctx, cfg)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("start %s: %w", cfg.NodeName, errs[i])
			}
		})
	}
	wg.Wait()
	var out []*cluster.Node
	for _, n := range started {
		if n != nil {
			out = append(out, n)
		}
	}
	return out, errors.Join(errs...)
}

// shutdown stops the nodes one at a time, followers first and the leader
// last, so leadership need not move while the others leave.
func shutdown(cl []*cluster.Node) {
	var followers, leaders []*cluster.Node
	for _, n := range cl {
		if n.IsLeader() {
			leaders = append(leaders, n)
		} else {
			followers = append(followers, n)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range append(followers, leaders...) {
		if err := n.Shutdown(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "three-node: shut down %s: %v\n", n.Name(), err)
		}
	}
}

// recorder keeps every run, by tick, from all three schedulers.
type recorder struct {
	mu   sync.Mutex
	runs map[int64][]scheduler.Run
	// first is closed by the first run.
	first     chan struct{}
	firstOnce sync.Once
}

func (r *recorder) record(_ context.Context, run scheduler.Run) error {
	r.firstOnce.Do(func() { close(r.first) })
	r.mu.Lock()
	r.runs[run.Tick] = append(r.runs[run.Tick], run)
	fmt.Printf("run job=%s tick=%d node=%s token=%d at=%s\n", run.Job, run.Tick, run.Node, run.Token, clock(run.At))
	r.mu.Unlock()
	return nil
}

type summary struct {
	ticks, runs, duplicates, missed int
	outside                         int
	tokenErrors                     int
	perNode                         string
}

// waitFirst waits for the first run.
func (r *recorder) waitFirst(ctx context.Context, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-r.first:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the first run of job %q: %w", jobName, ctx.Err())
	case <-timer.C:
		return fmt.Errorf("job %q did not run within %s", jobName, timeout)
	}
}

// summarize counts the recorded runs of ticks first..last.
func (r *recorder) summarize(first, last int64) summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s summary
	perNode := make(map[string]int)
	var prevToken uint64
	for k := first; k <= last; k++ {
		s.ticks++
		runs := r.runs[k]
		s.runs += len(runs)
		switch {
		case len(runs) == 0:
			s.missed++
			continue
		case len(runs) > 1:
			s.duplicates += len(runs) - 1
		}
		for _, run := range runs {
			perNode[run.Node]++
			if run.Token <= prevToken {
				s.tokenErrors++
			}
			prevToken = max(prevToken, run.Token)
		}
	}
	for k, runs := range r.runs {
		if k < first || k > last {
			s.outside += len(runs)
		}
	}
	names := make([]string, 0, len(perNode))
	for name := range perNode {
		names = append(names, name)
	}
	sort.Strings(names)
	var parts []string
	for _, name := range names {
		parts = append(parts, fmt.Sprintf("%s=%d", name, perNode[name]))
	}
	s.perNode = strings.Join(parts, " ")
	if s.perNode == "" {
		s.perNode = "none"
	}
	return s
}

// gatedWriter passes writes through until it is closed, then drops them.
type gatedWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return len(p), nil
	}
	return g.w.Write(p)
}

func (g *gatedWriter) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

func clock(t time.Time) string { return t.Format("15:04:05.000") }
