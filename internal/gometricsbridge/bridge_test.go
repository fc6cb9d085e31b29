package gometricsbridge

import (
	"testing"

	metrics "github.com/hashicorp/go-metrics/compat"
	"github.com/prometheus/client_golang/prometheus"
)

// counterValue gathers reg and returns the value of the counter name, or
// -1 if reg has no such series.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return -1
}

// TestAttachFansOutToEveryRegistryUntilDetached checks that the global
// go-metrics functions, which Raft and memberlist call, reach every
// attached registry, and stop reaching one once it is detached.
func TestAttachFansOutToEveryRegistryUntilDetached(t *testing.T) {
	a, b := prometheus.NewRegistry(), prometheus.NewRegistry()
	detachA, err := Attach(a)
	if err != nil {
		t.Fatal(err)
	}
	detachB, err := Attach(b)
	if err != nil {
		t.Fatal(err)
	}
	metrics.IncrCounter([]string{"raft", "test", "events"}, 2)
	if va, vb := counterValue(t, a, "raft_test_events"), counterValue(t, b, "raft_test_events"); va != 2 || vb != 2 {
		t.Fatalf("raft_test_events = %v in a and %v in b, want 2 in both", va, vb)
	}

	detachA()
	detachA() // a second call is harmless
	metrics.IncrCounter([]string{"raft", "test", "events"}, 1)
	if v := counterValue(t, a, "raft_test_events"); v != -1 {
		t.Errorf("a still has raft_test_events = %v after detach, want it unregistered", v)
	}
	if v := counterValue(t, b, "raft_test_events"); v != 3 {
		t.Errorf("b has raft_test_events = %v, want 3", v)
	}

	detachB()
	if len(sinks) != 0 {
		t.Errorf("%d sinks left after detaching both", len(sinks))
	}
	metrics.IncrCounter([]string{"raft", "test", "events"}, 1) // to the blackhole
}

// TestAttachTwiceToOneRegistry checks that a second bridge in the same
// registry is refused (its sink describes itself by one name), and that
// bridges in one registry wrapped with a node label each are accepted: the
// way several nodes share a registry.
func TestAttachTwiceToOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	detach, err := Attach(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Attach(reg); err == nil {
		t.Fatal("a second Attach to the same registry succeeded")
	}
	detach()

	shared := prometheus.NewRegistry()
	for _, node := range []string{"a", "b"} {
		detach, err := Attach(prometheus.WrapRegistererWith(prometheus.Labels{"node": node}, shared))
		if err != nil {
			t.Fatalf("Attach to the registry wrapped with node=%s: %v", node, err)
		}
		defer detach()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sinks) != 2 {
		t.Errorf("%d sinks attached, want 2 (the refused Attach must not leave one)", len(sinks))
	}
}
