package scheduler_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/scheduler"
)

// homemadeCluster satisfies scheduler.Cluster but is neither a
// *cluster.Node nor a schedulertest cluster.
type homemadeCluster struct{}

func (homemadeCluster) Name() string { return "homemade" }

// A Cluster of a type the scheduler cannot coordinate through is refused
// by Add, Run and GoInterval.Run, with an error naming the field and the
// type.
func TestForeignClusterIsRefused(t *testing.T) {
	job := scheduler.Job{Name: "j", Interval: time.Second, Func: func(context.Context, scheduler.Run) error { return nil }}
	s := scheduler.New(scheduler.Options{Cluster: homemadeCluster{}})
	g := &scheduler.GoInterval{Name: "j", Interval: time.Second, Arg: func() {}, Cluster: homemadeCluster{}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tests := []struct {
		name  string
		err   error
		field string
	}{
		{"Add", s.Add(job), "Options.Cluster"},
		{"Run", s.Run(ctx), "Options.Cluster"},
		{"GoInterval.Run", g.Run(ctx), "GoInterval.Cluster"},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, scheduler.ErrInvalidCluster) {
			t.Errorf("%s returned %v, want an error wrapping ErrInvalidCluster", tt.name, tt.err)
			continue
		}
		for _, want := range []string{tt.field, "scheduler_test.homemadeCluster", "*cluster.Node"} {
			if !strings.Contains(tt.err.Error(), want) {
				t.Errorf("%s error %q does not name %q", tt.name, tt.err, want)
			}
		}
	}
	if ctx.Err() != nil {
		t.Error("Run with a refused Cluster did not return at once")
	}
}

// A nil *cluster.Node in Options.Cluster runs every tick locally, as it
// did when the field was a *cluster.Node.
func TestNilNodeRunsLocally(t *testing.T) {
	var node *cluster.Node
	ran := make(chan scheduler.Run, 1)
	s := scheduler.New(scheduler.Options{Cluster: node})
	if err := s.Add(scheduler.Job{Name: "j", Interval: 10 * time.Millisecond, Func: func(_ context.Context, r scheduler.Run) error {
		select {
		case ran <- r:
		default:
		}
		return nil
	}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case r := <-ran:
		if r.Node != "" || r.Token != 0 {
			t.Errorf("run %+v has a node or token; a local run has neither", r)
		}
	case <-time.After(10 * time.Second):
		t.Error("no local run within 10s")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v", err)
	}
}
