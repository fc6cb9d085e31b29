package cluster_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/scheduler"
)

// Shutdown's ctx bounds the whole graceful shutdown: with a run that
// ignores its cancellation and a LeaveTimeout of a minute, a ctx of 300ms
// makes Shutdown stop the node at once and return an error wrapping
// ctx.Err(), and every later call returns that same result. The node did
// not leave: its peers still list it in the Raft configuration.
func TestShutdownContextCutsShort(t *testing.T) {
	const leaveTimeout = time.Minute
	c := clustertest.MakeCluster(t, 3, clustertest.Options{Configure: func(_ int, cfg *cluster.Config) {
		cfg.LeaveTimeout = leaveTimeout
	}})
	c.Leader(10 * time.Second)
	release := make(chan struct{})
	started := make(chan string, 1)
	job := scheduler.Job{Name: "deaf", Interval: 100 * time.Millisecond, Func: func(_ context.Context, r scheduler.Run) error {
		select {
		case started <- r.Node:
		default:
		}
		<-release // ignores its ctx
		return nil
	}}
	for _, n := range c.Nodes {
		runScheduler(t, n, job)
	}
	// Registered after runScheduler's cleanups, so it runs before them:
	// a Scheduler's Run returns only once its runs have.
	t.Cleanup(func() { close(release) })
	var holder int
	select {
	case name := <-started:
		holder = slices.IndexFunc(c.Nodes, func(n *cluster.Node) bool { return n.Name() == name })
	case <-time.After(15 * time.Second):
		t.Fatal("the job never started")
	}
	n := c.Nodes[holder]

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	begun := time.Now()
	err := n.Shutdown(ctx)
	took := time.Since(begun)
	c.Nodes[holder] = nil
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a 300ms ctx and a run that ignores cancellation returned %v, want an error wrapping context.DeadlineExceeded", err)
	}
	if took >= leaveTimeout/2 {
		t.Errorf("Shutdown took %s; ctx (300ms) should bound it, not LeaveTimeout (%s)", took, leaveTimeout)
	}
	if again := n.Shutdown(context.Background()); again == nil || again.Error() != err.Error() {
		t.Errorf("second Shutdown returned %v, want the first call's %v", again, err)
	}
	peer := c.Nodes[(holder+1)%3]
	servers, serr := peer.Servers()
	if serr != nil {
		t.Fatal(serr)
	}
	if !slices.ContainsFunc(servers, func(s cluster.Server) bool { return s.Name == n.Name() }) {
		t.Errorf("%s left the Raft configuration %v; a cut-short Shutdown must not finish the leave", n.Name(), servers)
	}
	t.Logf("Shutdown returned after %s: %v", took.Round(time.Millisecond), err)
	// The last survivor's graceful leave would wait its whole LeaveTimeout
	// for a quorum that includes the stopped node; crash the rest instead.
	for i, n := range c.Nodes {
		if n != nil {
			if err := clustertest.Kill(n); err != nil {
				t.Errorf("kill %s: %v", n.Name(), err)
			}
			c.Nodes[i] = nil
		}
	}
}
