package cluster

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestSnapshotMetricsCountAndTimeEachSnapshot writes snapshots through
// the wrapped store the way Raft does: one closed, one cancelled.
func TestSnapshotMetricsCountAndTimeEachSnapshot(t *testing.T) {
	m := newNodeMetrics(Config{Registerer: prometheus.NewRegistry()})
	store := m.snapshotStore(raft.NewInmemSnapshotStore())
	for _, cancel := range []bool{false, true} {
		sink, err := store.Create(raft.SnapshotVersionMax, 10, 1, raft.Configuration{}, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sink.Write([]byte("state")); err != nil {
			t.Fatal(err)
		}
		if cancel {
			err = sink.Cancel()
		} else {
			err = sink.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		_ = sink.Close() // Raft may close after a cancel; counted once
	}
	for result, want := range map[string]float64{"ok": 1, "cancelled": 1, "error": 0} {
		var out dto.Metric
		if err := m.snapshots.WithLabelValues(result).Write(&out); err != nil {
			t.Fatal(err)
		}
		if got := out.GetCounter().GetValue(); got != want {
			t.Errorf("interlock_raft_snapshots_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	var out dto.Metric
	if err := m.snapshotTime.Write(&out); err != nil {
		t.Fatal(err)
	}
	if got := out.GetHistogram().GetSampleCount(); got != 1 {
		t.Errorf("interlock_raft_snapshot_duration_seconds has %d observations, want 1 (the closed snapshot)", got)
	}
	if _, _, err := store.Open(mustList(t, store)); err != nil {
		t.Errorf("the wrapped store cannot open the snapshot it wrote: %v", err)
	}
}

// TestNodeMetricsNilIsANoOp checks that a node without a Registerer pays
// only nil checks and keeps its own snapshot store.
func TestNodeMetricsNilIsANoOp(t *testing.T) {
	m := newNodeMetrics(Config{})
	if m != nil {
		t.Fatal("metrics without a Registerer")
	}
	m.batchSent(time.Time{}, true, 3)
	m.lockGranted(time.Time{})
	m.leaseEnded(false)
	store := raft.NewInmemSnapshotStore()
	if got := m.snapshotStore(store); got != raft.SnapshotStore(store) {
		t.Errorf("snapshotStore wrapped the store without metrics: %T", got)
	}
}

func mustList(t *testing.T, s raft.SnapshotStore) string {
	t.Helper()
	list, err := s.List()
	if err != nil || len(list) == 0 {
		t.Fatalf("list snapshots: %v, %d", err, len(list))
	}
	return list[0].ID
}
