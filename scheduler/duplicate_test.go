package scheduler_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/scheduler"
)

// bgRun is a Run going on in the background.
type bgRun struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned; err is set then
	err    error
}

// runInBackground runs f with a context that stop, or the test's cleanup,
// cancels.
func runInBackground(t *testing.T, f func(context.Context) error) *bgRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &bgRun{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = f(ctx)
	}()
	t.Cleanup(func() {
		if err := r.stop(); err != nil && !errors.Is(err, scheduler.ErrDuplicateJob) {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

// stop cancels the Run and returns its error.
func (r *bgRun) stop() error {
	r.cancel()
	select {
	case <-r.done:
		return r.err
	case <-time.After(10 * time.Second):
		return errors.New("Run did not return within 10s of cancel")
	}
}

// checkDuplicateError asserts that err is the clear duplicate-name error.
func checkDuplicateError(t *testing.T, err error, job, node string) {
	t.Helper()
	if !errors.Is(err, scheduler.ErrDuplicateJob) {
		t.Fatalf("second Run = %v, want an error wrapping ErrDuplicateJob", err)
	}
	for _, want := range []string{job, node, "distinct Names", "stop that one first"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// Two GoIntervals with the same Name on one node used to run every tick
// twice, with the same fencing token: the state machine answers the second
// claim from the same node as a repeat of the first. The second one must
// be refused with an error, and no tick may run twice on the node.
func TestDuplicateGoIntervalOnOneNodeRunsEachTickOnce(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	c.Leader(10 * time.Second)
	node := c.Nodes[1]
	const interval = 200 * time.Millisecond

	var mu sync.Mutex
	perTick := map[int64]int{}
	total := 0
	arg := func() {
		k := scheduler.TickIndex(interval, time.Now())
		mu.Lock()
		perTick[k]++
		total++
		mu.Unlock()
	}
	runs := func() int {
		mu.Lock()
		defer mu.Unlock()
		return total
	}
	first := &scheduler.GoInterval{Name: "dup", Interval: interval, Arg: arg, Cluster: node}
	firstRun := runInBackground(t, first.Run)
	clustertest.Eventually(t, 15*time.Second, func() bool { return runs() >= 2 }, "the first GoInterval never ran")

	second := &scheduler.GoInterval{Name: "dup", Interval: interval, Arg: arg, Cluster: node}
	secondRun := runInBackground(t, second.Run)
	select {
	case <-secondRun.done:
		checkDuplicateError(t, secondRun.err, `"dup"`, `"node1"`)
	case <-time.After(3 * time.Second):
		t.Errorf("second GoInterval with the same Name on the same node is still running after 3s; want an ErrDuplicateJob error at once")
	}
	// Watch ten more ticks.
	before := runs()
	clustertest.Eventually(t, 15*time.Second, func() bool { return runs() >= before+10 }, "runs stopped after the duplicate was refused")
	if err := firstRun.stop(); err != nil {
		t.Errorf("first GoInterval: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for k, n := range perTick {
		if n > 1 {
			t.Errorf("tick %d ran %d times on %s", k, n, node.Name())
		}
	}
}

// An old Scheduler and its reloaded replacement on one node: the
// replacement cannot start while the old one runs, and once the old one has
// returned it takes over without running any instant the old one ran.
func TestReloadedSchedulerHandover(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	c.Leader(10 * time.Second)
	node := c.Nodes[2]
	const interval = 100 * time.Millisecond
	rec := &recorder{}
	newScheduler := func() *scheduler.Scheduler {
		s := scheduler.New(scheduler.Options{Cluster: node})
		err := s.Add(scheduler.Job{Name: "report", Interval: interval, Func: func(_ context.Context, r scheduler.Run) error {
			rec.add(r)
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	old := newScheduler()
	oldRun := runInBackground(t, old.Run)
	clustertest.Eventually(t, 15*time.Second, func() bool { return len(rec.snapshot()) >= 3 }, "the old scheduler never ran")

	reloaded := newScheduler()
	early := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		early <- reloaded.Run(ctx)
	}()
	checkDuplicateError(t, <-early, `"report"`, `"node2"`)
	before := len(rec.snapshot())
	clustertest.Eventually(t, 15*time.Second, func() bool { return len(rec.snapshot()) >= before+5 }, "the old scheduler stopped running")

	if err := oldRun.stop(); err != nil {
		t.Fatalf("old Run: %v", err)
	}
	handover := len(rec.snapshot())
	newRun := runInBackground(t, reloaded.Run)
	clustertest.Eventually(t, 15*time.Second, func() bool { return len(rec.snapshot()) >= handover+5 }, "the reloaded scheduler never ran")
	if err := newRun.stop(); err != nil {
		t.Fatalf("reloaded Run: %v", err)
	}

	seen := map[time.Time]scheduler.Run{}
	for _, r := range rec.snapshot() {
		if prev, dup := seen[r.At]; dup {
			t.Errorf("instant %s ran twice: tokens %d and %d", r.At, prev.Token, r.Token)
		}
		seen[r.At] = r
	}
	rec.check(t)
}

// A Scheduler that is running refuses to Add a Name another running
// Scheduler of the same node schedules, and accepts it once that one
// removed it.
func TestAddWhileRunningChecksTheNode(t *testing.T) {
	c := clustertest.MakeCluster(t, 1, clustertest.Options{})
	c.Leader(10 * time.Second)
	node := c.Nodes[0]
	// started returns a scheduler running job, once it has run it: Run
	// has started and holds the name.
	started := func(job string) *scheduler.Scheduler {
		ran := make(chan struct{})
		var once sync.Once
		s := scheduler.New(scheduler.Options{Cluster: node})
		err := s.Add(scheduler.Job{Name: job, Interval: 50 * time.Millisecond, Func: func(context.Context, scheduler.Run) error {
			once.Do(func() { close(ran) })
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		runInBackground(t, s.Run)
		select {
		case <-ran:
		case <-time.After(15 * time.Second):
			t.Fatalf("job %s never ran", job)
		}
		return s
	}
	a := started("shared")
	b := started("other")
	noop := func(context.Context, scheduler.Run) error { return nil }
	err := b.Add(scheduler.Job{Name: "shared", Interval: time.Hour, Func: noop})
	if err == nil {
		t.Fatal("b added a Name that a running Scheduler of the same node schedules")
	}
	checkDuplicateError(t, err, `"shared"`, `"node0"`)
	if err := a.Remove("shared"); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(scheduler.Job{Name: "shared", Interval: time.Hour, Func: noop}); err != nil {
		t.Fatalf("Add after the other Scheduler removed the job: %v", err)
	}
}
