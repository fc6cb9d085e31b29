// Command interlock-node runs one Interlock node as an OS process, for the
// multi-process integration tests in package integration. It uses only the
// library's public API: cluster.Start, then a scheduler.Scheduler with the
// jobs given by -jobs.
//
// Every run appends one JSON line to -runlog before the job body does its
// work:
//
//	{"job":"a","tick":8712345678,"node":"n1","token":45,"at":1742...,"start":1742...}
//
// where at is the tick's scheduled instant and start the moment the run
// began, both in Unix nanoseconds. The file is opened with
// O_APPEND|O_CREATE|O_WRONLY and each line is written with one write call,
// so concurrent runs never interleave and kill -9 never leaves a torn line.
//
// GET /status on -http answers with the node's view of the cluster:
//
//	{"name":"n1","leader":"n0","is_leader":false,
//	 "servers":[{"name":"n0","address":"127.0.0.1:41001","voter":true},...],
//	 "members":[{"name":"n0","status":"alive","since":1742...},...],
//	 "applied_index":57,"ready":true,"pid":1234}
//
// where a member's since is when this node's gossip first saw it in its
// current status, in Unix nanoseconds (the clock the library's
// DeadServerTimeout counts from).
//
// Until cluster.Start has returned it answers 503 with "ready":false.
//
// POST /pause?job=N pauses the job cluster-wide (Scheduler.Pause); it
// answers 200, or 409 with the error, such as the refusal while a server
// of an older protocol version is in the cluster.
//
// With -debug-dumps DIR (or INTERLOCK_NODE_DEBUG_DUMPS=DIR in the
// environment, which the test processes pass on), each SIGUSR1 writes the stacks of all goroutines
// to DIR/goroutines-<pid>-<unix nanoseconds>.txt and the node goes on running.
// Tests take such dumps of a node while it misbehaves, such as a new leader
// whose claims keep failing.
//
// On SIGTERM or SIGINT the node stops its scheduler, calls node.Shutdown and
// exits 0 (1 if Shutdown reports an error). If cluster.Start fails, the error
// goes to stderr and the exit status is 2; bad flags also exit 2.
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
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/scheduler"
)

// jobSpec is one -jobs entry: name:interval[:duration] or
// name:cron=SPEC[:duration].
type jobSpec struct {
	name     string
	interval time.Duration
	sched    scheduler.Schedule
	duration time.Duration
}

func parseJobs(s string) ([]jobSpec, error) {
	var out []jobSpec
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	seen := map[string]bool{}
	for _, entry := range strings.Split(s, ",") {
		parts := strings.Split(strings.TrimSpace(entry), ":")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" {
			return nil, fmt.Errorf("-jobs entry %q: want name:interval[:duration] or name:cron=SPEC[:duration], such as a:200ms, b:1s:50ms or c:cron=*/2 * * * * *", entry)
		}
		js := jobSpec{name: parts[0]}
		var err error
		if spec, ok := strings.CutPrefix(parts[1], "cron="); ok {
			if js.sched, err = scheduler.Cron(spec); err != nil {
				return nil, fmt.Errorf("-jobs entry %q: %w", entry, err)
			}
		} else if js.interval, err = time.ParseDuration(parts[1]); err != nil || js.interval <= 0 {
			return nil, fmt.Errorf("-jobs entry %q: interval %q must be a positive duration", entry, parts[1])
		}
		if len(parts) == 3 {
			if js.duration, err = time.ParseDuration(parts[2]); err != nil || js.duration < 0 {
				return nil, fmt.Errorf("-jobs entry %q: duration %q must be a non-negative duration", entry, parts[2])
			}
		}
		if seen[js.name] {
			return nil, fmt.Errorf("-jobs: job %q listed twice", js.name)
		}
		seen[js.name] = true
		out = append(out, js)
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// runLine is one line of the runlog.
type runLine struct {
	Job   string `json:"job"`
	Tick  int64  `json:"tick"`
	Node  string `json:"node"`
	Token uint64 `json:"token"`
	At    int64  `json:"at"`
	Start int64  `json:"start"`
}

// runLog appends run lines to a file, one write call per line.
type runLog struct {
	f *os.File
}

func openRunLog(path string) (*runLog, error) {
	if path == "" {
		return &runLog{}, nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	return &runLog{f: f}, nil
}

func (l *runLog) write(r runLine) error {
	if l.f == nil {
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	// One write(2) of a few dozen bytes to an O_APPEND file: the kernel
	// appends it whole, so lines from concurrent runs never interleave and a
	// SIGKILL leaves either the whole line or none of it.
	n, err := l.f.Write(b)
	if err == nil && n != len(b) {
		err = fmt.Errorf("short write: %d of %d bytes", n, len(b))
	}
	return err
}

func (l *runLog) close() {
	if l.f != nil {
		l.f.Close()
	}
}

type statusServer struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
}

type statusMember struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Since  int64  `json:"since"`
}

type status struct {
	Name         string         `json:"name"`
	Ready        bool           `json:"ready"`
	PID          int            `json:"pid"`
	Leader       string         `json:"leader"`
	IsLeader     bool           `json:"is_leader"`
	Servers      []statusServer `json:"servers"`
	Members      []statusMember `json:"members"`
	AppliedIndex uint64         `json:"applied_index"`
	Error        string         `json:"error,omitempty"`
}

func statusHandler(name string, node *atomic.Pointer[cluster.Node]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		st := status{Name: name, PID: os.Getpid(), Servers: []statusServer{}, Members: []statusMember{}}
		code := http.StatusOK
		if n := node.Load(); n == nil {
			code = http.StatusServiceUnavailable
		} else {
			st.Ready = true
			st.Leader = n.Leader()
			st.IsLeader = n.IsLeader()
			st.AppliedIndex = n.AppliedIndex()
			servers, err := n.Servers()
			if err != nil {
				st.Error = err.Error()
				code = http.StatusServiceUnavailable
			}
			for _, s := range servers {
				st.Servers = append(st.Servers, statusServer{Name: s.Name, Address: s.Address, Voter: s.Voter})
			}
			for _, m := range n.Members() {
				st.Members = append(st.Members, statusMember{Name: m.Name, Status: m.Status.String(), Since: m.Since.UnixNano()})
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(st)
	}
}

// lockHandler serves POST /lock?name=N&ttl=D: it takes the lock with the
// request's context (no deadline of its own, as application code often
// calls Lock), releases it at once, and answers with the fencing token.
// Tests use it to drive a lock operation on a chosen node.
func lockHandler(node *atomic.Pointer[cluster.Node]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		n := node.Load()
		if n == nil {
			http.Error(w, "node not ready", http.StatusServiceUnavailable)
			return
		}
		ttl, err := time.ParseDuration(r.URL.Query().Get("ttl"))
		if err != nil {
			http.Error(w, "ttl: "+err.Error(), http.StatusBadRequest)
			return
		}
		l, err := n.Lock(r.Context(), r.URL.Query().Get("name"), ttl)
		if err != nil {
			http.Error(w, "lock: "+err.Error(), http.StatusConflict)
			return
		}
		if err := l.Unlock(r.Context()); err != nil {
			http.Error(w, "unlock: "+err.Error(), http.StatusConflict)
			return
		}
		fmt.Fprintf(w, "%d\n", l.Token())
	}
}

// pauseHandler serves POST /pause?job=N: Scheduler.Pause with the
// request's context. The rolling upgrade test drives the version gate
// with it.
func pauseHandler(sched *atomic.Pointer[scheduler.Scheduler]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		s := sched.Load()
		if s == nil {
			http.Error(w, "scheduler not running", http.StatusServiceUnavailable)
			return
		}
		if err := s.Pause(r.Context(), r.URL.Query().Get("job")); err != nil {
			http.Error(w, "pause: "+err.Error(), http.StatusConflict)
			return
		}
		fmt.Fprintln(w, "paused")
	}
}

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("interlock-node", flag.ContinueOnError)
	name := fs.String("name", "", "NodeName (required)")
	bind := fs.String("bind", "127.0.0.1:7946", "gossip host:port (TCP and UDP)")
	raftAddr := fs.String("raft", "127.0.0.1:7947", "Raft and RPC host:port")
	join := fs.String("join", "", "comma-separated gossip host:port of members")
	dataDir := fs.String("data-dir", "", "Raft data directory (empty keeps Raft in memory)")
	logStore := fs.String("log-store", "bolt", "LogStore with -data-dir: bolt or wal")
	expect := fs.Int("expect", 0, "BootstrapExpect")
	clusterName := fs.String("cluster-name", "", "ClusterName (default: the library's)")
	maxVoters := fs.Int("max-voters", 0, "MaxVoters (0: the library's default)")
	deadServerTimeout := fs.Duration("dead-server-timeout", 0, "DeadServerTimeout (0: the library's default; negative sets DisableDeadServerCleanup)")
	jobsFlag := fs.String("jobs", "", "comma-separated name:interval[:duration] or name:cron=SPEC[:duration] (a cron spec without commas), such as a:200ms,b:1s:50ms,c:cron=*/2 * * * * *")
	runlogPath := fs.String("runlog", "", "file each run appends one JSON line to")
	httpAddr := fs.String("http", "", "127.0.0.1:port for GET /status (empty: no endpoint)")
	logLevel := fs.String("log-level", "warn", "log level: trace, debug, info, warn, error, off")
	startTimeout := fs.Duration("start-timeout", time.Minute, "how long cluster.Start may take")
	dumpDir := fs.String("debug-dumps", os.Getenv("INTERLOCK_NODE_DEBUG_DUMPS"), "directory that each SIGUSR1 writes a goroutine dump to (empty: SIGUSR1 is not handled); default $INTERLOCK_NODE_DEBUG_DUMPS")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "interlock-node: "+format+"\n", args...)
		return 2
	}
	if fs.NArg() > 0 {
		return fail("unexpected arguments %q", fs.Args())
	}
	if *name == "" {
		return fail("-name is required")
	}
	level := hclog.LevelFromString(*logLevel)
	if level == hclog.NoLevel {
		return fail("-log-level %q: use trace, debug, info, warn, error or off", *logLevel)
	}
	jobs, err := parseJobs(*jobsFlag)
	if err != nil {
		return fail("%v", err)
	}
	store, err := cluster.ParseLogStore(*logStore)
	if err != nil {
		return fail("-log-store: %v", err)
	}
	if *startTimeout <= 0 {
		return fail("-start-timeout must be positive")
	}
	rl, err := openRunLog(*runlogPath)
	if err != nil {
		return fail("open runlog: %v", err)
	}
	defer rl.close()

	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "interlock",
		Level:      level,
		Output:     os.Stderr,
		TimeFormat: "15:04:05.000000",
	})

	if *dumpDir != "" {
		stopDumps := dumpOnSignal(*dumpDir)
		defer stopDumps()
	}

	sigCtx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stopSignals()

	var node atomic.Pointer[cluster.Node]
	var schedPtr atomic.Pointer[scheduler.Scheduler]
	var httpSrv *http.Server
	httpDone := make(chan struct{})
	if *httpAddr != "" {
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			return fail("listen on -http %s: %v", *httpAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/status", statusHandler(*name, &node))
		mux.Handle("/lock", lockHandler(&node))
		mux.Handle("/pause", pauseHandler(&schedPtr))
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			defer close(httpDone)
			if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fmt.Fprintf(os.Stderr, "interlock-node: status server: %v\n", err)
			}
		}()
	} else {
		close(httpDone)
	}
	stopHTTP := func() {
		if httpSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = httpSrv.Shutdown(ctx)
			cancel()
		}
		<-httpDone
	}
	defer stopHTTP()

	cfg := cluster.Config{
		NodeName:          *name,
		ClusterName:       *clusterName,
		BindAddr:          *bind,
		RaftAddr:          *raftAddr,
		DataDir:           *dataDir,
		LogStore:          store,
		Join:              splitList(*join),
		BootstrapExpect:   *expect,
		MaxVoters:         *maxVoters,
		DeadServerTimeout: max(*deadServerTimeout, 0),
		Logger:            logger,
		// The flag keeps its old meaning: negative turns the cleanup off.
		DisableDeadServerCleanup: *deadServerTimeout < 0,
	}
	fmt.Fprintf(os.Stderr, "interlock-node: starting name=%s pid=%d bind=%s raft=%s data-dir=%q expect=%d dead-server-timeout=%s\n",
		*name, os.Getpid(), *bind, *raftAddr, *dataDir, *expect, *deadServerTimeout)
	startCtx, cancelStart := context.WithTimeout(sigCtx, *startTimeout)
	n, err := cluster.Start(startCtx, cfg)
	cancelStart()
	if err != nil {
		if sigCtx.Err() != nil {
			fmt.Fprintf(os.Stderr, "interlock-node: signal during start: %v\n", err)
			return 0
		}
		return fail("start: %v", err)
	}
	node.Store(n)
	fmt.Fprintf(os.Stderr, "interlock-node: ready name=%s leader=%s\n", n.Name(), n.Leader())

	sched := scheduler.New(scheduler.Options{Cluster: n})
	for _, js := range jobs {
		d := js.duration
		err := sched.Add(scheduler.Job{
			Name:     js.name,
			Interval: js.interval,
			Schedule: js.sched,
			Func: func(ctx context.Context, r scheduler.Run) error {
				line := runLine{Job: r.Job, Tick: r.Tick, Node: r.Node, Token: r.Token, At: r.At.UnixNano(), Start: time.Now().UnixNano()}
				if err := rl.write(line); err != nil {
					fmt.Fprintf(os.Stderr, "interlock-node: runlog write: %v\n", err)
				}
				if d > 0 {
					t := time.NewTimer(d)
					defer t.Stop()
					select {
					case <-t.C:
					case <-ctx.Done():
					}
				}
				return nil
			},
		})
		if err != nil {
			n.Shutdown(context.Background())
			return fail("add job %s: %v", js.name, err)
		}
	}
	schedPtr.Store(sched)
	schedCtx, stopSched := context.WithCancel(context.Background())
	var schedWG sync.WaitGroup
	schedWG.Add(1)
	go func() {
		defer schedWG.Done()
		if err := sched.Run(schedCtx); err != nil {
			fmt.Fprintf(os.Stderr, "interlock-node: scheduler: %v\n", err)
		}
	}()

	<-sigCtx.Done()
	// A second SIGTERM or SIGINT now ends the process at once.
	stopSignals()
	fmt.Fprintf(os.Stderr, "interlock-node: signal received, stopping name=%s\n", *name)
	stopSched()
	schedWG.Wait()
	// No deadline: Config.LeaveTimeout bounds each step of the leave, and
	// the orchestrator's own grace period bounds the process.
	if err := n.Shutdown(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "interlock-node: shutdown: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "interlock-node: stopped name=%s\n", *name)
	return 0
}

// dumpOnSignal writes a goroutine dump to dir on every SIGUSR1 until the
// returned function is called.
func dumpOnSignal(dir string) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
			case <-done:
				return
			}
			if err := writeGoroutineDump(dir); err != nil {
				fmt.Fprintf(os.Stderr, "interlock-node: goroutine dump: %v\n", err)
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

func writeGoroutineDump(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, fmt.Sprintf("goroutines-%d-%d.txt", os.Getpid(), time.Now().UnixNano()))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("goroutine").WriteTo(f, 2); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
