package scheduler_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/scheduler"
)

// scrape GETs /metrics from a promhttp handler over reg, as Prometheus
// would, and parses the text it serves.
func scrape(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	return mfs
}

// value returns the value of the series of family name whose labels
// include every pair in labels, and whether there is one.
func value(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf, ok := mfs[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// mustValue is value, failing the test when the series is absent.
func mustValue(t *testing.T, node string, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := value(mfs, name, labels...)
	if !ok {
		t.Fatalf("%s: no series %s%v in the scrape", node, name, labels)
	}
	return v
}

// TestMetricsLiveThreeNodeCluster scrapes a live three-node cluster in
// which each node, and its scheduler, registers with its own registry:
// the job's runs, the Raft role and term, a lock, gossip, and the bridged
// go-metrics of Raft and memberlist, and lints the interlock_ names.
func TestMetricsLiveThreeNodeCluster(t *testing.T) {
	regs := make([]*prometheus.Registry, 3)
	for i := range regs {
		regs[i] = prometheus.NewRegistry()
	}
	c := clustertest.MakeCluster(t, 3, clustertest.Options{Configure: func(i int, cfg *cluster.Config) {
		cfg.Registerer = regs[i]
	}})
	c.Leader(10 * time.Second)

	// A job on every node; the runs the job itself sees are the truth.
	var ran atomic.Int64
	var mu sync.Mutex
	ranOn := map[string]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, len(c.Nodes))
	for i, n := range c.Nodes {
		s := scheduler.New(scheduler.Options{Cluster: n, Registerer: regs[i]})
		if err := s.Add(scheduler.Job{Name: "report", Interval: 50 * time.Millisecond, Func: func(_ context.Context, r scheduler.Run) error {
			ran.Add(1)
			mu.Lock()
			ranOn[r.Node] = true
			mu.Unlock()
			return nil
		}}); err != nil {
			t.Fatal(err)
		}
		go func() { done <- s.Run(ctx) }()
	}
	// Every node must have run it, so that each has its per-job series.
	clustertest.Eventually(t, 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return ran.Load() >= 10 && len(ranOn) == 3
	}, "the job did not run 10 times, on all three nodes")
	cancel()
	for range c.Nodes {
		if err := <-done; err != nil {
			t.Fatalf("scheduler Run: %v", err)
		}
	}

	// A lock taken on one node and released.
	holder := c.Nodes[1]
	lease, err := holder.Lock(context.Background(), "metrics-test", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	held := scrape(t, regs[1])
	if v := mustValue(t, holder.Name(), held, "interlock_lock_held"); v != 1 {
		t.Errorf("%s: interlock_lock_held = %v while holding a lease, want 1", holder.Name(), v)
	}
	if err := lease.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Wait for the bridged series, which arrive with Raft's and
	// memberlist's own timers, and for every node to agree on the term.
	var scrapes []map[string]*dto.MetricFamily
	clustertest.Eventually(t, 20*time.Second, func() bool {
		scrapes = scrapes[:0]
		terms := map[float64]bool{}
		for i := range c.Nodes {
			mfs := scrape(t, regs[i])
			scrapes = append(scrapes, mfs)
			if _, ok := mfs["raft_commitTime"]; !ok {
				return false
			}
			if !hasPrefix(mfs, "memberlist_") {
				return false
			}
			v, _ := value(mfs, "interlock_raft_term")
			terms[v] = true
		}
		return len(terms) == 1
	}, "bridged raft_ and memberlist_ series, and one term on every node")

	var runs, granted, leaders, entries, commands float64
	for i, mfs := range scrapes {
		name := c.Nodes[i].Name()
		runs += mustValue(t, name, mfs, "interlock_job_runs_total", "job", "report", "result", "success")
		granted += mustValue(t, name, mfs, "interlock_job_claims_total", "job", "report", "outcome", "granted")
		mustValue(t, name, mfs, "interlock_job_claims_total", "job", "report", "outcome", "taken")
		if v, ok := value(mfs, "interlock_job_runs_total", "job", "report", "result", "error"); ok && v != 0 {
			t.Errorf("%s: %v runs ended in error, want 0", name, v)
		}
		leader := mustValue(t, name, mfs, "interlock_raft_state", "state", "leader")
		leaders += leader
		if leader == 1 {
			entries = mustValue(t, name, mfs, "interlock_raft_entries_total")
			commands = mustValue(t, name, mfs, "interlock_raft_commands_total")
		}
		if v := mustValue(t, name, mfs, "interlock_gossip_members", "state", "alive"); v != 3 {
			t.Errorf("%s: interlock_gossip_members{state=\"alive\"} = %v, want 3", name, v)
		}
		if v := mustValue(t, name, mfs, "interlock_raft_servers", "suffrage", "voter"); v != 3 {
			t.Errorf("%s: interlock_raft_servers{suffrage=\"voter\"} = %v, want 3", name, v)
		}
		if v := mustValue(t, name, mfs, "interlock_raft_applied_index"); v < 1 {
			t.Errorf("%s: interlock_raft_applied_index = %v, want > 0", name, v)
		}
		if v := mustValue(t, name, mfs, "interlock_job_lateness_seconds", "job", "report"); v == 0 {
			t.Errorf("%s: no lateness observed", name)
		}
		if v := mustValue(t, name, mfs, "interlock_raft_leader_changes_total"); v < 1 {
			t.Errorf("%s: interlock_raft_leader_changes_total = %v, want at least the first election", name, v)
		}
		wantLocks := 0.0
		if i == 1 {
			wantLocks = 1
		}
		if v := mustValue(t, name, mfs, "interlock_lock_acquisitions_total"); v != wantLocks {
			t.Errorf("%s: interlock_lock_acquisitions_total = %v, want %v", name, v, wantLocks)
		}
		if v := mustValue(t, name, mfs, "interlock_lock_wait_seconds"); v != wantLocks {
			t.Errorf("%s: interlock_lock_wait_seconds has %v observations, want %v", name, v, wantLocks)
		}
		if v := mustValue(t, name, mfs, "interlock_lock_held"); v != 0 {
			t.Errorf("%s: interlock_lock_held = %v after Unlock, want 0", name, v)
		}
		if v := mustValue(t, name, mfs, "interlock_lock_leases_lost_total"); v != 0 {
			t.Errorf("%s: interlock_lock_leases_lost_total = %v after an Unlock, want 0", name, v)
		}
		lintInterlockMin(t, name, mfs, 20)
	}
	if got := ran.Load(); runs != float64(got) {
		t.Errorf("interlock_job_runs_total summed over the nodes = %v, the job ran %d times", runs, got)
	}
	if granted != runs {
		t.Errorf("interlock_job_claims_total{outcome=\"granted\"} summed over the nodes = %v, want the %v runs", granted, runs)
	}
	if leaders != 1 {
		t.Errorf("interlock_raft_state{state=\"leader\"} is 1 on %v nodes, want exactly 1", leaders)
	}
	if entries < 1 || commands < entries {
		t.Errorf("leader: interlock_raft_entries_total = %v, interlock_raft_commands_total = %v; want entries > 0 and commands >= entries", entries, commands)
	}

	// A lease left to expire, without keep-alive, counts as lost.
	short, err := holder.Lock(context.Background(), "metrics-expire", 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-short.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a 200ms lease without keep-alive did not end within 10s")
	}
	if v := mustValue(t, holder.Name(), scrape(t, regs[1]), "interlock_lock_leases_lost_total"); v != 1 {
		t.Errorf("%s: interlock_lock_leases_lost_total = %v after a lease expired, want 1", holder.Name(), v)
	}

	// Shutdown unregisters the node's collectors and its bridge.
	c.Shutdown()
	mfs, err := regs[0].Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if n := mf.GetName(); strings.HasPrefix(n, "interlock_raft_") || strings.HasPrefix(n, "raft_") {
			t.Errorf("after Shutdown the registry still has %s", n)
		}
	}
}

func hasPrefix(mfs map[string]*dto.MetricFamily, prefix string) bool {
	for name := range mfs {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// lintInterlockMin runs Prometheus' linter over the interlock_ families; the
// bridged names are Raft's and memberlist's own, not ours to lint.
// At least min families must be there, so a scrape that lost a collector
// does not pass as clean.
func lintInterlockMin(t *testing.T, node string, mfs map[string]*dto.MetricFamily, min int) {
	t.Helper()
	var ours []*dto.MetricFamily
	for name, mf := range mfs {
		if strings.HasPrefix(name, "interlock_") {
			ours = append(ours, mf)
		}
	}
	if len(ours) < min {
		t.Errorf("%s: only %d interlock_ families in the scrape", node, len(ours))
	}
	problems, err := promlint.NewWithMetricFamilies(ours).Lint()
	if err != nil {
		t.Fatalf("%s: promlint: %v", node, err)
	}
	for _, p := range problems {
		t.Errorf("%s: promlint: %s: %s", node, p.Metric, p.Text)
	}
}
