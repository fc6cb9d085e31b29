// Command swarm is Interlock packaged as a service: every replica runs this
// same binary, the replicas find each other through DNS and form one Raft
// cluster, and each job runs once per tick on exactly one replica. It is
// the program the Dockerfile builds and deploy/ runs as a Docker Swarm
// service, a Compose project or a Kubernetes StatefulSet.
//
// It reads its configuration from the environment:
//
//	INTERLOCK_NODE_NAME         node name; default the hostname
//	INTERLOCK_CLUSTER_NAME      default "interlock"
//	INTERLOCK_JOIN              comma-separated names or host:port, such as tasks.interlock
//	INTERLOCK_BOOTSTRAP_EXPECT  servers to wait for before the first election; default 3
//	INTERLOCK_MAX_VOTERS        Raft voters at most, later replicas are non-voters; default 5
//	INTERLOCK_DATA_DIR          Raft data directory; default "" (in memory)
//	INTERLOCK_BIND_ADDR         gossip host:port, TCP and UDP; default 0.0.0.0:7946
//	INTERLOCK_ADVERTISE_ADDR    gossip address peers use: host:port, an interface name such as eth0, or a go-sockaddr template
//	INTERLOCK_RAFT_ADDR         Raft and RPC host:port; default :7947
//	INTERLOCK_STATUS_ADDR       host:port for GET /status; default "" (none)
//	INTERLOCK_JOBS              name:interval list; default heartbeat:1s,report:5s,cleanup:15s
//	INTERLOCK_LOCK              lock the lock loop takes; default maintenance
//	INTERLOCK_LOCK_EVERY        how often the lock loop tries the lock; default 10s
//	INTERLOCK_LOG_LEVEL         trace, debug, info, warn, error or off; default info
//	INTERLOCK_LOG_FORMAT        text or json; default text
//	INTERLOCK_RUN_FOR           stop by itself after this long; default 0 (run until SIGTERM)
//
// Every run of a job logs one line at Info, with the keys node, job, tick
// and token, for instance
//
//	[INFO]  interlock.app: run: node=interlock-2 job=heartbeat tick=1764104412 token=4711 at=21:40:12.000
//
// so `docker service logs` shows which replica ran each tick, and that no
// tick ran twice. A replica that holds the lock logs "lock held" with its
// fencing token, and a change of leader is logged as "leader".
//
// On SIGTERM or SIGINT (or after INTERLOCK_RUN_FOR) it stops its jobs,
// leaves the cluster gracefully and prints, on standard output,
//
//	stopped node=interlock-2 runs=12 locks=3
//
// It exits 2 on bad configuration and 1 if the node could not start or
// shut down cleanly.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/scheduler"
)

func main() {
	os.Exit(run())
}

func run() int {
	s, err := loadSettings(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "swarm:", err)
		return 2
	}
	if s.nodeName == "" {
		s.nodeName = hostname()
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "interlock",
		Level:      s.logLevel,
		JSONFormat: s.logJSON,
		Output:     os.Stderr,
	})
	app := logger.Named("app").With("node", s.nodeName)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if s.runFor > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.runFor)
		defer cancel()
	}

	var node atomic.Pointer[cluster.Node]
	stopStatus, err := serveStatus(s.statusAddr, s.nodeName, &node, app)
	if err != nil {
		app.Error("status endpoint", "addr", s.statusAddr, "error", err)
		return 1
	}
	defer stopStatus()

	n, err := cluster.Start(ctx, cluster.Config{
		NodeName:        s.nodeName,
		ClusterName:     s.clusterName,
		Join:            s.join,
		BootstrapExpect: s.bootstrapExpect,
		MaxVoters:       s.maxVoters,
		DataDir:         s.dataDir,
		BindAddr:        s.bindAddr,
		AdvertiseAddr:   s.advertiseAddr,
		RaftAddr:        s.raftAddr,
		Logger:          logger,
	})
	if err != nil {
		if ctx.Err() != nil {
			app.Info("stopped before the node started", "reason", context.Cause(ctx))
			return 0
		}
		app.Error("could not start", "error", err)
		return 1
	}
	node.Store(n)
	app.Info("started", "leader", n.Leader(), "gossip_addr", n.GossipAddr(), "raft_addr", n.RaftAddr())

	var runs, locks atomic.Int64
	sched := scheduler.New(scheduler.Options{Cluster: n, Logger: logger})
	for _, j := range s.jobs {
		err := sched.Add(scheduler.Job{
			Name:     j.name,
			Interval: j.interval,
			Func: func(ctx context.Context, r scheduler.Run) error {
				runs.Add(1)
				app.Info("run", "job", r.Job, "tick", r.Tick, "token", r.Token, "at", r.At.Format("15:04:05.000"))
				return nil
			},
		})
		if err != nil {
			app.Error("add job", "job", j.name, "error", err)
			shutdown(n, app)
			return 2
		}
	}

	workCtx, stopWork := context.WithCancel(context.Background())
	var work sync.WaitGroup
	work.Add(3)
	go func() {
		defer work.Done()
		if err := sched.Run(workCtx); err != nil {
			app.Warn("scheduler stopped", "error", err)
		}
	}()
	go func() {
		defer work.Done()
		lockLoop(workCtx, n, s.lockName, s.lockEvery, app, &locks)
	}()
	go func() {
		defer work.Done()
		watchLeader(workCtx, n, app)
	}()

	<-ctx.Done()
	stop() // a second SIGTERM now ends the process at once
	stopWork()
	work.Wait()
	code := shutdown(n, app)
	fmt.Printf("stopped node=%s runs=%d locks=%d\n", s.nodeName, runs.Load(), locks.Load())
	return code
}

// shutdown leaves the cluster gracefully within shutdownTimeout, which is
// shorter than the stack's stop_grace_period, so the node stops on its own
// terms before the engine sends SIGKILL.
func shutdown(n *cluster.Node, app hclog.Logger) int {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		app.Error("shutdown", "error", err)
		return 1
	}
	return 0
}

// shutdownTimeout bounds the graceful shutdown; deploy/docker-stack.yml
// gives the task 30 s.
const shutdownTimeout = 20 * time.Second

// lockLoop tries the lock every interval; a replica that gets it holds it
// for a moment, as a maintenance task guarded by the lock would, and
// releases it.
func lockLoop(ctx context.Context, n *cluster.Node, name string, every time.Duration, app hclog.Logger, held *atomic.Int64) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l, err := n.TryLock(ctx, name, every)
		switch {
		case errors.Is(err, cluster.ErrLocked):
			continue
		case err != nil:
			if ctx.Err() == nil {
				app.Warn("lock", "lock", name, "error", err)
			}
			continue
		}
		held.Add(1)
		app.Info("lock held", "lock", name, "token", l.Token())
		select {
		case <-ctx.Done():
		case <-time.After(every / 4):
		}
		// Unlock on its own context: the loop's may be cancelled already.
		uctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := l.Unlock(uctx); err != nil && !errors.Is(err, cluster.ErrShutdown) {
			app.Warn("unlock", "lock", name, "token", l.Token(), "error", err)
		}
		cancel()
	}
}

// watchLeader logs every change of leader this node sees.
func watchLeader(ctx context.Context, n *cluster.Node, app hclog.Logger) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	last := n.Leader()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if l := n.Leader(); l != last {
			last = l
			app.Info("leader", "leader", l, "is_leader", n.IsLeader())
		}
	}
}

// serveStatus serves GET /status on addr until the returned function is
// called; an empty addr serves nothing.
func serveStatus(addr, name string, node *atomic.Pointer[cluster.Node], app hclog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("INTERLOCK_STATUS_ADDR=%s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /status", statusHandler(name, node))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			app.Warn("status endpoint stopped", "error", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}
