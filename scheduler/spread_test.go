package scheduler_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/scheduler"
)

// TestSpreadOverThreeNodes checks issue 12's spread aim: 300 jobs at 1 s on
// three nodes for 60 s, each node running between 25% and 42% of the runs,
// with no (job, instant) run twice and none missed. Rendezvous ranking of (job, instant)
// makes every replica agree on who goes first, so the work spreads without
// any node coordinating it.
func TestSpreadOverThreeNodes(t *testing.T) {
	const (
		jobs   = 300
		window = 60 * time.Second
	)
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	c.Leader(10 * time.Second)

	type key struct {
		job string
		at  time.Time
	}
	var mu sync.Mutex
	ranOn := make(map[key][]string)
	var latest time.Time
	record := func(_ context.Context, r scheduler.Run) error {
		mu.Lock()
		k := key{r.Job, r.At}
		ranOn[k] = append(ranOn[k], r.Node)
		if r.At.After(latest) {
			latest = r.At
		}
		mu.Unlock()
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, n := range c.Nodes {
		s := scheduler.New(scheduler.Options{Cluster: n})
		for i := range jobs {
			if err := s.Add(scheduler.Job{Name: fmt.Sprintf("spread-%03d", i), Interval: time.Second, Func: record}); err != nil {
				t.Fatal(err)
			}
		}
		wg.Go(func() {
			if err := s.Run(ctx); err != nil {
				t.Errorf("Run on %s: %v", n.Name(), err)
			}
		})
	}
	// Count from the first whole second after every scheduler has
	// registered its jobs and run at least one tick.
	clustertest.Eventually(t, 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ranOn) >= jobs
	}, "the jobs did not start")
	from := time.Now().Truncate(time.Second).Add(2 * time.Second)
	to := from.Add(window)
	clustertest.Eventually(t, window+30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return !latest.Before(to.Add(time.Second))
	}, "runs did not reach the end of the %s window", window)

	mu.Lock()
	defer mu.Unlock()
	perNode := make(map[string]int)
	total, dups := 0, 0
	for k, nodes := range ranOn {
		if k.at.Before(from) || !k.at.Before(to) {
			continue
		}
		if len(nodes) > 1 {
			dups++
			t.Errorf("%s at %s ran %d times: on %v", k.job, k.at.Format(time.TimeOnly), len(nodes), nodes)
		}
		perNode[nodes[0]]++
		total++
	}
	want := jobs * int(window/time.Second)
	t.Logf("%d of %d (job, instant) pairs ran in the window, %d twice; per node: %v", total, want, dups, perNode)
	if total != want {
		t.Errorf("%d of the window's %d (job, instant) pairs ran nowhere", want-total, want)
	}
	if total == 0 {
		t.FailNow()
	}
	for _, n := range c.Nodes {
		share := float64(perNode[n.Name()]) / float64(total)
		if share < 0.25 || share > 0.42 {
			t.Errorf("%s ran %.1f%% of the runs (%d of %d); want between 25%% and 42%%", n.Name(), 100*share, perNode[n.Name()], total)
		}
	}
}
