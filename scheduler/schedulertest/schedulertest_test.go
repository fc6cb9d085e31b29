package schedulertest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/interlockraft/interlock/scheduler"
	"github.com/interlockraft/interlock/scheduler/schedulertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// runs records the runs of a job.
type runs struct {
	mu   sync.Mutex
	list []scheduler.Run
}

func (r *runs) record(_ context.Context, run scheduler.Run) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, run)
	return nil
}

func (r *runs) snapshot() []scheduler.Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.list)
}

// start runs s until the test ends.
func start(t *testing.T, s *scheduler.Scheduler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func waitGrants(t *testing.T, c *schedulertest.Cluster, n int) []schedulertest.Grant {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	grants, err := c.WaitGrants(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	return grants
}

// eventually polls cond until it holds, or fails the test after 10s.
func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Every tick is granted to the node once, with a token above the last,
// and the run carries the grant's node and token.
func TestGrantsEveryTickWithIncreasingTokens(t *testing.T) {
	c := schedulertest.NewCluster("node-a", schedulertest.WithLogger(hclog.NewNullLogger()))
	var r runs
	s := scheduler.New(scheduler.Options{Cluster: c})
	if err := s.Add(scheduler.Job{Name: "j", Interval: 20 * time.Millisecond, Func: r.record}); err != nil {
		t.Fatal(err)
	}
	start(t, s)
	grants := waitGrants(t, c, 3)
	for i, g := range grants {
		if g.Node != "node-a" || g.Job != "j" {
			t.Errorf("grant %d = %+v, want job j to node-a", i, g)
		}
		if i > 0 && (g.Token <= grants[i-1].Token || g.Tick <= grants[i-1].Tick) {
			t.Errorf("grant %d (tick %d, token %d) does not follow grant %d (tick %d, token %d)", i, g.Tick, g.Token, i-1, grants[i-1].Tick, grants[i-1].Token)
		}
		if !g.At.Equal(scheduler.TickAt(20*time.Millisecond, g.Tick)) {
			t.Errorf("grant %d At %s is not tick %d's instant", i, g.At, g.Tick)
		}
	}
	eventually(t, func() bool { return len(r.snapshot()) >= 3 }, "fewer than 3 runs for 3 grants")
	for i, run := range r.snapshot()[:3] {
		if g := grants[i]; run.Tick != g.Tick || run.Token != g.Token || run.Node != "node-a" {
			t.Errorf("run %d = %+v, want tick %d, token %d on node-a", i, run, g.Tick, g.Token)
		}
	}
}

// Ticks granted to another node by GrantTo do not run here, and later
// ticks do: the other node's run holds no lease.
func TestGrantToAnotherNode(t *testing.T) {
	c := schedulertest.NewCluster("node-a", schedulertest.WithLogger(hclog.NewNullLogger()))
	c.GrantTo("j", "node-b", 2)
	var r runs
	s := scheduler.New(scheduler.Options{Cluster: c})
	if err := s.Add(scheduler.Job{Name: "j", Interval: 20 * time.Millisecond, Func: r.record}); err != nil {
		t.Fatal(err)
	}
	start(t, s)
	grants := waitGrants(t, c, 4)
	var nodes []string
	for _, g := range grants[:4] {
		nodes = append(nodes, g.Node)
	}
	if want := []string{"node-b", "node-b", "node-a", "node-a"}; !slices.Equal(nodes, want) {
		t.Fatalf("grants went to %v, want %v", nodes, want)
	}
	eventually(t, func() bool { return len(r.snapshot()) >= 2 }, "node-a did not run the ticks granted to it")
	for _, run := range r.snapshot() {
		if run.Tick == grants[0].Tick || run.Tick == grants[1].Tick {
			t.Errorf("node-a ran tick %d, which was granted to node-b", run.Tick)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.buf.String()), "\n")
}

// A claim failed by FailClaims grants nothing: the Scheduler logs the
// missed tick with the scripted error, and the first grant is a later
// tick. The interval is longer than the second for which the Scheduler
// looks for the grant of a failed claim: a later grant within it would
// resolve the tick as taken, and nothing would be logged.
func TestFailClaims(t *testing.T) {
	logs := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: logs, JSONFormat: true})
	c := schedulertest.NewCluster("node-a", schedulertest.WithLogger(logger))
	c.FailClaims("j", 1, errors.New("no quorum (scripted)"))
	var r runs
	s := scheduler.New(scheduler.Options{Cluster: c})
	if err := s.Add(scheduler.Job{Name: "j", Interval: 1500 * time.Millisecond, Func: r.record}); err != nil {
		t.Fatal(err)
	}
	start(t, s)
	var failedTick int64
	eventually(t, func() bool {
		for _, line := range logs.lines() {
			var entry struct {
				Message string  `json:"@message"`
				Error   string  `json:"error"`
				Tick    float64 `json:"tick"`
			}
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Error == "no quorum (scripted)" {
				failedTick = int64(entry.Tick)
				return true
			}
		}
		return false
	}, "the Scheduler never logged the scripted claim failure")
	grants := waitGrants(t, c, 1)
	if grants[0].Tick <= failedTick {
		t.Errorf("first grant is tick %d, not after the failed claim of tick %d", grants[0].Tick, failedTick)
	}
	for _, g := range c.Grants() {
		if g.Tick == failedTick {
			t.Errorf("the failed tick %d was granted: %+v", failedTick, g)
		}
	}
}

// LoseLease cancels the context of the run in progress at its next
// renewal; without it, the run would go on, its lease renewed.
func TestLoseLease(t *testing.T) {
	c := schedulertest.NewCluster("node-a", schedulertest.WithLogger(hclog.NewNullLogger()))
	started := make(chan struct{}, 1)
	cancelled := make(chan time.Duration, 1)
	s := scheduler.New(scheduler.Options{Cluster: c})
	err := s.Add(scheduler.Job{Name: "j", Interval: 50 * time.Millisecond, RunLease: 300 * time.Millisecond, Func: func(ctx context.Context, _ scheduler.Run) error {
		select {
		case started <- struct{}{}:
		default:
			return nil // only the first run waits
		}
		begun := time.Now()
		<-ctx.Done()
		cancelled <- time.Since(begun)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the job never started")
	}
	// Several renewals pass with the lease held: the run goes on.
	renewals := time.NewTimer(time.Second)
	select {
	case d := <-cancelled:
		t.Fatalf("the run was cancelled after %s with its lease held", d)
	case <-renewals.C:
	}
	c.LoseLease("j")
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the run was not cancelled within 10s of LoseLease")
	}
}

// GoInterval accepts the fake as its Cluster, as gointerlock users' tests
// would pass it.
func TestGoInterval(t *testing.T) {
	c := schedulertest.NewCluster("node-a", schedulertest.WithLogger(hclog.NewNullLogger()))
	ran := make(chan struct{}, 1)
	g := &scheduler.GoInterval{Name: "j", Interval: 20 * time.Millisecond, Cluster: c, Arg: func() {
		select {
		case ran <- struct{}{}:
		default:
		}
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	select {
	case <-ran:
	case err := <-done:
		t.Fatalf("Run returned %v before Arg ran", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Arg never ran")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(c.Grants()) == 0 {
		t.Error("Arg ran without a grant")
	}
}
