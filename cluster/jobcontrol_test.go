package cluster_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/fsm"
	"github.com/interlockraft/interlock/scheduler"
)

// TestPauseSurvivesRestart pauses a job from one node, checks every node
// refuses its claims, and that a follower restarted from its snapshot
// still knows the job is paused until it is resumed.
func TestPauseSurvivesRestart(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{DataDir: true})
	leader := c.Leader(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := scheduler.New(scheduler.Options{Cluster: c.Nodes[leader]}).Pause(ctx, "nightly"); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	for _, n := range c.Nodes {
		clustertest.Eventually(t, 10*time.Second, func() bool { return cluster.State(n).Paused("nightly") }, "%s never saw the pause", n.Name())
	}
	victim := (leader + 1) % 3
	if err := cluster.RaftSnapshot(c.Nodes[victim]); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if err := clustertest.Kill(c.Nodes[victim]); err != nil {
		t.Fatal(err)
	}
	c.Nodes[victim] = nil
	n, err := cluster.Start(ctx, c.Configs[victim])
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	c.Nodes[victim] = n
	if !cluster.State(n).Paused("nightly") {
		t.Fatal("the restarted node does not know the job is paused")
	}
	res, err := cluster.Plumbing(n).Claim(ctx, []fsm.Claim{claimNow("nightly", 1)}, true)
	if err != nil || res.Outcomes[0].Reason != fsm.ReasonPaused {
		t.Fatalf("claim of a paused job after restart = %+v, %v; want refused as paused", res, err)
	}
	if err := scheduler.New(scheduler.Options{Cluster: n}).Resume(ctx, "nightly"); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	res, err = cluster.Plumbing(n).Claim(ctx, []fsm.Claim{claimNow("nightly", 2)}, true)
	if err != nil || !res.Outcomes[0].Granted() {
		t.Fatalf("claim after Resume = %+v, %v; want granted", res, err)
	}
}

// manualRuns records the runs of a job on every node.
type manualRuns struct {
	mu   sync.Mutex
	runs []scheduler.Run
}

func (m *manualRuns) list() []scheduler.Run {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.runs)
}

// TestRunNowRunsOnceAndHistoryReachesEveryNode asks for two manual runs of
// an hourly job on three nodes: each runs exactly once, on one node, with
// a token above the last, and every node's history lists both, the second
// with its error.
func TestRunNowRunsOnceAndHistoryReachesEveryNode(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	c.Leader(10 * time.Second)
	var rec manualRuns
	boom := errors.New("disk full")
	job := func(_ context.Context, r scheduler.Run) error {
		rec.mu.Lock()
		rec.runs = append(rec.runs, r)
		n := len(rec.runs)
		rec.mu.Unlock()
		if n == 2 {
			return boom
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	scheds := make([]*scheduler.Scheduler, 3)
	var wg sync.WaitGroup
	for i, n := range c.Nodes {
		scheds[i] = scheduler.New(scheduler.Options{Cluster: n})
		if err := scheds[i].Add(scheduler.Job{Name: "report", Interval: time.Hour, Func: job}); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := scheds[i].Run(ctx); err != nil {
				t.Errorf("Run: %v", err)
			}
		}()
	}
	defer wg.Wait()
	defer cancel()
	for _, n := range c.Nodes {
		clustertest.Eventually(t, 10*time.Second, func() bool { return len(clustertest.Candidates(n, "report")) == 3 }, "%s never saw all three registrations", n.Name())
	}
	var last uint64
	for k := 1; k <= 2; k++ {
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		err := scheds[k%3].RunNow(rctx, "report")
		rcancel()
		if err != nil {
			t.Fatalf("RunNow %d: %v", k, err)
		}
		// Settled everywhere: the run is in every node's history.
		for _, s := range scheds {
			clustertest.Eventually(t, 10*time.Second, func() bool { return len(s.History("report")) == k }, "history never reached %d entries", k)
		}
		runs := rec.list()
		if len(runs) != k {
			t.Fatalf("after RunNow %d: %d runs, want %d: %+v", k, len(runs), k, runs)
		}
		r := runs[k-1]
		if r.Token <= last || r.Tick >= 0 || r.Node == "" {
			t.Fatalf("run %d = %+v, want a token above %d, a negative tick and a node", k, r, last)
		}
		last = r.Token
		for i, s := range scheds {
			h := s.History("report")[k-1]
			if h.Token != r.Token || h.Node != r.Node || !h.At.Equal(r.At) || h.Tick != r.Tick {
				t.Errorf("node%d history[%d] = %+v, want the run %+v", i, k-1, h, r)
			}
			wantResult, wantErr := scheduler.ResultSuccess, ""
			if k == 2 {
				wantResult, wantErr = scheduler.ResultError, boom.Error()
			}
			if h.Result != wantResult || h.Error != wantErr {
				t.Errorf("node%d history[%d] result %v %q, want %v %q", i, k-1, h.Result, h.Error, wantResult, wantErr)
			}
		}
	}
	st := scheds[0].Jobs()
	if len(st) != 1 || st[0].Token != last || st[0].LastRun == nil || st[0].LastRun.Token != last || st[0].Next.IsZero() || st[0].Paused {
		t.Errorf("Jobs() = %+v, want the last run's token %d, a next tick, not paused", st, last)
	}
	// Paused: RunNow is refused.
	if err := scheds[1].Pause(ctx, "report"); err != nil {
		t.Fatal(err)
	}
	if err := scheds[2].RunNow(ctx, "report"); !errors.Is(err, scheduler.ErrPaused) {
		t.Errorf("RunNow of a paused job = %v, want ErrPaused", err)
	}
	if err := scheds[2].RunNow(ctx, "nobody-runs-this"); !errors.Is(err, scheduler.ErrUnknownJob) {
		t.Errorf("RunNow of an unregistered job = %v, want ErrUnknownJob", err)
	}
}

// TestRequireTagsLimitsNodes runs a job that requires zone=b on three
// nodes, one of them in zone a: it never runs there, and the others
// share it.
func TestRequireTagsLimitsNodes(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{Configure: func(i int, cfg *cluster.Config) {
		cfg.Tags = map[string]string{"zone": "b"}
		// Short, so a node that re-registered held jobs on its
		// Schedulers' behalf (reregister.go) would do it well before
		// the end; the job is not node0's to register.
		cfg.ReconcileInterval = 50 * time.Millisecond
		if i == 0 {
			cfg.Tags["zone"] = "a"
		}
	}})
	c.Leader(10 * time.Second)
	for _, n := range c.Nodes {
		clustertest.Eventually(t, 10*time.Second, func() bool {
			for _, m := range n.Members() {
				if m.Tags["zone"] == "" {
					return false
				}
			}
			return len(n.Members()) == 3
		}, "%s never saw every member's tags", n.Name())
	}
	var mu sync.Mutex
	byNode := make(map[string]int)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, n := range c.Nodes {
		s := scheduler.New(scheduler.Options{Cluster: n})
		err := s.Add(scheduler.Job{Name: "zone-b", Interval: 100 * time.Millisecond, RequireTags: map[string]string{"zone": "b"}, Func: func(_ context.Context, r scheduler.Run) error {
			mu.Lock()
			byNode[r.Node]++
			mu.Unlock()
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Run(ctx); err != nil {
				t.Errorf("Run: %v", err)
			}
		}()
	}
	clustertest.Eventually(t, 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return byNode["node1"] > 0 && byNode["node2"] > 0 && byNode["node1"]+byNode["node2"] >= 10
	}, "zone b nodes did not share the job")
	mu.Lock()
	defer mu.Unlock()
	if byNode["node0"] != 0 {
		t.Errorf("node0 (zone a) ran a zone=b job %d times; runs by node: %v", byNode["node0"], byNode)
	}
	if got := clustertest.Candidates(c.Nodes[0], "zone-b"); slices.Contains(got, "node0") {
		t.Errorf("candidates %v include node0, which does not match", got)
	}
}

// TestTagsValidation checks the Tags rules.
func TestTagsValidation(t *testing.T) {
	long := make(map[string]string)
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"} {
		long[k] = "0123456789012345678901234567890"
	}
	for name, tags := range map[string]map[string]string{"empty key": {"": "x"}, "too long": long} {
		cfg := cluster.Config{NodeName: "n", BootstrapExpect: 1, Tags: tags}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cluster.Start(ctx, cfg)
		cancel()
		if !errors.Is(err, cluster.ErrInvalidConfig) {
			t.Errorf("%s: Start = %v, want ErrInvalidConfig", name, err)
		}
	}
}
