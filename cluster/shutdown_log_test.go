package cluster_test

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/scheduler"
)

// lineLog keeps every line written to it, for several loggers at once.
type lineLog struct {
	mu    sync.Mutex
	lines []string
	part  bytes.Buffer
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.part.Write(p)
	for {
		line, err := l.part.ReadString('\n')
		if err != nil {
			// An incomplete line stays for the next write.
			l.part.Reset()
			l.part.WriteString(line)
			return len(p), nil
		}
		l.lines = append(l.lines, strings.TrimSuffix(line, "\n"))
	}
}

func (l *lineLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// from returns the lines written from index i on.
func (l *lineLog) from(i int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines[i:]...)
}

// aboveInfo reports whether an hclog line is at Warn or Error.
func aboveInfo(line string) bool {
	return strings.Contains(line, "[WARN]") || strings.Contains(line, "[ERROR]")
}

// TestGracefulShutdownLogsNothingAboveInfo shuts a three-node cluster down
// one node at a time while it runs jobs and a lock is held and waited for,
// with every log line captured at Trace. Nothing logged from the first
// Shutdown on may be above Info: "use of closed network connection" from
// memberlist and from Raft's network transport used to be logged at ERROR
// by every node as it closed its own sockets.
func TestGracefulShutdownLogsNothingAboveInfo(t *testing.T) {
	logs := &lineLog{}
	c := clustertest.MakeCluster(t, 3, clustertest.Options{DataDir: true, Configure: func(i int, cfg *cluster.Config) {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: cfg.NodeName, Level: hclog.Trace, Output: logs})
	}})
	leader := c.Leader(10 * time.Second)

	// Every node runs the same job, as replicas do.
	var runs sync.Map
	stops := make([]func(), len(c.Nodes))
	for i, n := range c.Nodes {
		s := scheduler.New(scheduler.Options{Cluster: n})
		// A tick whose claim waits out the leader's handover runs late
		// rather than being missed, which would log Warn (lateStartAllowance).
		if err := s.Add(scheduler.Job{Name: "tidy", Interval: 50 * time.Millisecond, StartDeadline: lateStartAllowance, Func: func(_ context.Context, r scheduler.Run) error {
			runs.Store(r.Tick, r.Node)
			return nil
		}}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Run(ctx)
		}()
		stops[i] = func() { cancel(); <-done }
		t.Cleanup(stops[i])
	}
	ranOn := func() map[string]bool {
		nodes := make(map[string]bool)
		runs.Range(func(_, v any) bool { nodes[v.(string)] = true; return true })
		return nodes
	}
	clustertest.Eventually(t, 20*time.Second, func() bool { return len(ranOn()) == 3 }, "the job did not run on all three nodes: %v", ranOn())

	// The leader holds a lock with keep-alive; a follower waits for it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lease, err := c.Nodes[leader].Lock(ctx, "report", 2*time.Second, cluster.WithKeepAlive())
	if err != nil {
		t.Fatal(err)
	}
	_ = lease
	waiter := (leader + 1) % 3
	got := make(chan *cluster.Lease, 1)
	go func() {
		l, err := c.Nodes[waiter].Lock(ctx, "report", 2*time.Second, cluster.WithKeepAlive())
		if err != nil {
			t.Errorf("waiter: %v", err)
		}
		got <- l
	}()

	mark := logs.len()
	// The leader first, with its lock held: leadership moves, the lock
	// passes to the waiter. Then the waiter, holding it, then the last.
	order := []int{leader, waiter, (leader + 2) % 3}
	for k, i := range order {
		stops[i]()
		c.Stop(i)
		if k == 0 {
			select {
			case l := <-got:
				if l == nil {
					t.Fatal("the waiter did not get the lock")
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the waiter did not get the lock within 20s of the holder's shutdown")
			}
		}
	}
	// memberlist's Shutdown does not wait for a probe in flight, which can
	// still log; wait for its goroutines to end so their lines count too.
	clustertest.Eventually(t, 10*time.Second, func() bool {
		buf := make([]byte, 1<<20)
		return !bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("hashicorp/memberlist."))
	}, "memberlist goroutines still running after every node shut down")

	var bad, info []string
	for _, line := range logs.from(mark) {
		if aboveInfo(line) {
			bad = append(bad, line)
		}
		if aboveInfo(line) || strings.Contains(line, "[INFO]") {
			info = append(info, line)
		}
	}
	if len(bad) > 0 {
		t.Fatalf("graceful shutdown logged %d line(s) above Info:\n%s\n\nevery line at Info and above since the first Shutdown:\n%s",
			len(bad), strings.Join(bad, "\n"), strings.Join(info, "\n"))
	}
}

// TestWholeClusterStopLogsNothingAboveInfo stops every node of a
// three-node cluster at once, as removing a whole service does, with every
// log line captured. No node has anyone left to hand leadership to or to
// remove it from Raft, and that is no fault: nothing may be logged above
// Info. Each used to wait out LeaveTimeout and log "graceful raft leave
// incomplete" at Warn. The configuration stays whole, so the three start
// again from their DataDirs as the same three voters.
func TestWholeClusterStopLogsNothingAboveInfo(t *testing.T) {
	logs := &lineLog{}
	c := clustertest.MakeCluster(t, 3, clustertest.Options{DataDir: true, Configure: func(i int, cfg *cluster.Config) {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: cfg.NodeName, Level: hclog.Trace, Output: logs})
	}})
	c.Leader(10 * time.Second)
	mark := logs.len()
	c.Shutdown()
	for i := range c.Nodes {
		c.Nodes[i] = nil
	}
	for _, line := range logs.from(mark) {
		if aboveInfo(line) {
			t.Errorf("logged above Info while the whole cluster stopped: %s", line)
		}
	}

	// The same three again, from their DataDirs.
	c.StartAll(30 * time.Second)
	l := c.Leader(10 * time.Second)
	servers, err := c.Nodes[l].Servers()
	if err != nil {
		t.Fatal(err)
	}
	voters := 0
	for _, s := range servers {
		if s.Voter {
			voters++
		}
	}
	if voters != 3 {
		t.Fatalf("after restarting the whole cluster, servers %v; want the same three voters", servers)
	}
}
