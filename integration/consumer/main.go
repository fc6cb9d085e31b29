// Command consumer is the program that check.sh builds in a throwaway
// module outside this repository, the way an application that imports
// Interlock would. It starts a one-node cluster on 127.0.0.1 with its Raft
// data on disk, runs a scheduler job for a few ticks, takes a lock twice,
// shuts the node down, and exits non-zero with a message if any step did
// not do what the API promises:
//
//   - at least minRuns runs, each on this node, on distinct ticks, with
//     fencing tokens that strictly increase;
//   - a lock taken again after Unlock gets a higher token;
//   - nothing logged at Warn or above, shutdown included.
//
// It uses only the public API, and every call that an API change would
// touch stays in this one file.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/scheduler"
)

const (
	jobName  = "consumer-check"
	lockName = "consumer-lock"
	interval = 100 * time.Millisecond
	minRuns  = 3
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "consumer: FAIL:", err)
		os.Exit(1)
	}
}

// runLog records the runs the job saw; the job runs on scheduler
// goroutines while run reads it.
type runLog struct {
	mu   sync.Mutex
	runs []scheduler.Run
	done chan struct{}
}

func (l *runLog) record(_ context.Context, r scheduler.Run) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.runs = append(l.runs, r)
	if len(l.runs) == minRuns {
		close(l.done)
	}
	return nil
}

func (l *runLog) check(node string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.runs) < minRuns {
		return fmt.Errorf("%d runs, want at least %d", len(l.runs), minRuns)
	}
	ticks := map[int64]bool{}
	var last uint64
	for i, r := range l.runs {
		if r.Job != jobName || r.Node != node {
			return fmt.Errorf("run %d is job %q on node %q, want %q on %q", i, r.Job, r.Node, jobName, node)
		}
		if ticks[r.Tick] {
			return fmt.Errorf("tick %d ran twice", r.Tick)
		}
		ticks[r.Tick] = true
		if r.Token <= last {
			return fmt.Errorf("run %d (tick %d) has token %d, not above the previous run's %d", i, r.Tick, r.Token, last)
		}
		last = r.Token
	}
	return nil
}

func run(ctx context.Context) error {
	dataDir, err := os.MkdirTemp("", "interlock-consumer-data-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)

	var logs bytes.Buffer
	var logsMu sync.Mutex
	logger := hclog.New(&hclog.LoggerOptions{
		Name:   "consumer",
		Level:  hclog.Info,
		Output: io.MultiWriter(os.Stderr, lockedWriter{&logsMu, &logs}),
	})

	node, err := cluster.Start(ctx, cluster.Config{
		NodeName:        "consumer",
		BindAddr:        "127.0.0.1:0",
		RaftAddr:        "127.0.0.1:0",
		DataDir:         dataDir,
		BootstrapExpect: 1,
		Logger:          logger,
	})
	if err != nil {
		return fmt.Errorf("cluster.Start: %w", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = shutdown(node)
		}
	}()

	if err := runJob(ctx, node); err != nil {
		return err
	}
	if err := lockTwice(ctx, node); err != nil {
		return err
	}

	stopped = true
	if err := shutdown(node); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logsMu.Lock()
	defer logsMu.Unlock()
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "[WARN]") || strings.Contains(line, "[ERROR]") {
			return fmt.Errorf("logged above Info: %s", line)
		}
	}
	fmt.Println("consumer: ok")
	return nil
}

// runJob runs one job on the node until it has run minRuns times, then
// stops the scheduler and checks the runs.
func runJob(ctx context.Context, node *cluster.Node) error {
	log := &runLog{done: make(chan struct{})}
	sched := scheduler.New(scheduler.Options{Cluster: node})
	if err := sched.Add(scheduler.Job{Name: jobName, Interval: interval, Func: log.record}); err != nil {
		return fmt.Errorf("scheduler Add: %w", err)
	}
	schedCtx, stopSched := context.WithCancel(ctx)
	schedErr := make(chan error, 1)
	go func() { schedErr <- sched.Run(schedCtx) }()

	select {
	case <-log.done:
	case <-ctx.Done():
	}
	stopSched()
	if err := <-schedErr; err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("scheduler Run: %w", err)
	}
	if err := log.check(node.Name()); err != nil {
		return fmt.Errorf("job %s: %w", jobName, err)
	}
	return nil
}

// lockTwice takes the lock, releases it, and takes it again: the second
// holder's fencing token must be higher.
func lockTwice(ctx context.Context, node *cluster.Node) error {
	var tokens []uint64
	for range 2 {
		lease, err := node.Lock(ctx, lockName, 5*time.Second)
		if err != nil {
			return fmt.Errorf("Lock %s: %w", lockName, err)
		}
		tokens = append(tokens, lease.Token())
		if err := lease.Unlock(ctx); err != nil {
			return fmt.Errorf("Unlock %s: %w", lockName, err)
		}
	}
	if tokens[0] == 0 || tokens[1] <= tokens[0] {
		return fmt.Errorf("lock tokens %v: want a nonzero token that increases", tokens)
	}
	return nil
}

// shutdown leaves the cluster gracefully, bounded by a minute.
func shutdown(node *cluster.Node) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return node.Shutdown(ctx)
}

// lockedWriter serializes writes to a buffer that run reads at the end.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
