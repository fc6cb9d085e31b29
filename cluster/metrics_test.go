package cluster_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
)

// startSingle starts a one-node cluster registered with reg.
func startSingle(t *testing.T, name string, reg prometheus.Registerer) (*cluster.Node, error) {
	t.Helper()
	ports := clustertest.FreePorts(t, 2)
	cfg := clustertest.Config(t, 0, ports[:1], ports[1])
	cfg.NodeName = name
	cfg.Logger = clustertest.Logger(name)
	cfg.Registerer = reg
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := cluster.Start(ctx, cfg)
	if err == nil {
		t.Cleanup(func() { n.Shutdown(context.Background()) })
	}
	return n, err
}

// TestMetricsTwoNodesInOneRegistry checks the documented ways for two
// nodes of one process to share a registry: unwrapped, the second node's
// Start fails with ErrInvalidConfig and says how to fix it; wrapped with a
// node label each, both register and are told apart.
func TestMetricsTwoNodesInOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := startSingle(t, "first", reg); err != nil {
		t.Fatal(err)
	}
	_, err := startSingle(t, "second", reg)
	if !errors.Is(err, cluster.ErrInvalidConfig) {
		t.Fatalf("second node in the same registry: err = %v, want ErrInvalidConfig", err)
	}

	shared := prometheus.NewRegistry()
	for _, name := range []string{"a", "b"} {
		if _, err := startSingle(t, name, prometheus.WrapRegistererWith(prometheus.Labels{"node": name}, shared)); err != nil {
			t.Fatalf("node %s in a registry wrapped with its name: %v", name, err)
		}
	}
	mfs, err := shared.Gather()
	if err != nil {
		t.Fatal(err)
	}
	leaders := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "interlock_raft_state" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["state"] == "leader" {
				leaders[labels["node"]] = m.GetGauge().GetValue()
			}
		}
	}
	if leaders["a"] != 1 || leaders["b"] != 1 || len(leaders) != 2 {
		t.Errorf("interlock_raft_state{state=\"leader\"} by node = %v, want a and b each leading their own cluster", leaders)
	}
}
