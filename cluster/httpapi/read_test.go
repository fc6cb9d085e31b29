package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/cluster/httpapi"
)

// TestReadEndpoints checks every GET endpoint's JSON against a live
// three-node cluster whose Schedulers run jobs, then /readyz once the
// cluster has lost its quorum.
func TestReadEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	probe := prometheus.NewCounter(prometheus.CounterOpts{Name: "interlock_test_probe_total", Help: "A counter the test reads back."})
	reg.MustRegister(probe)
	probe.Add(3)
	a := startAPI(t, 3, func(i int, c *httpapi.Config) {
		if i == 0 {
			c.Gatherer = reg
			c.EnablePprof = true
		}
	})
	leader := a.Nodes[a.Leader(10*time.Second)].Name()

	// Status: all three agree on the leader and list three voters.
	for i, srv := range a.Servers {
		var st httpapi.Status
		getJSON(t, srv.URL+"/v1/status", http.StatusOK, &st)
		if st.Node != a.Nodes[i].Name() || st.Cluster == "" || st.Leader != leader || !st.Ready || st.NotReady != "" {
			t.Fatalf("node %d status: %+v, want leader %s and ready", i, st, leader)
		}
		if (st.Role == "leader") != (st.Node == leader) || st.Term == 0 || st.CommitIndex == 0 || st.AppliedIndex == 0 || st.LastIndex < st.CommitIndex {
			t.Fatalf("node %d status: role %s term %d indexes %d/%d/%d", i, st.Role, st.Term, st.CommitIndex, st.AppliedIndex, st.LastIndex)
		}
		if len(st.Members) != 3 {
			t.Fatalf("node %d: %d members, want 3", i, len(st.Members))
		}
		leaders := 0
		for _, m := range st.Members {
			if m.Gossip != "alive" || m.RaftAddr == "" || m.GossipAddr == "" || (m.Role != "leader" && m.Role != "voter") {
				t.Fatalf("node %d: member %+v", i, m)
			}
			if m.Role == "leader" {
				leaders++
				if m.Name != leader {
					t.Fatalf("node %d lists %s as leader, want %s", i, m.Name, leader)
				}
			}
		}
		if leaders != 1 {
			t.Fatalf("node %d lists %d leaders", i, leaders)
		}
	}
	// Health and last contact: on the leader only, once autopilot ran.
	li := nodeIndex(a.Cluster, leader)
	clustertest.Eventually(t, 15*time.Second, func() bool {
		var st httpapi.Status
		getJSON(t, a.Servers[li].URL+"/v1/status", http.StatusOK, &st)
		for _, m := range st.Members {
			if m.Healthy == nil || !*m.Healthy || m.LastContactSeconds == nil || *m.LastContactSeconds < 0 || *m.LastContactSeconds > 5 {
				return false
			}
		}
		return true
	}, "the leader never reported three healthy members with a recent last contact")

	// Jobs: each node lists the three jobs; report has run, with a token.
	for i, srv := range a.Servers {
		clustertest.Eventually(t, 15*time.Second, func() bool {
			var jobs []httpapi.Job
			getJSON(t, srv.URL+"/v1/jobs", http.StatusOK, &jobs)
			if len(jobs) != 3 || jobs[0].Name != "clock" || jobs[1].Name != "hourly" || jobs[2].Name != "report" {
				t.Fatalf("node %d jobs: %+v", i, jobs)
			}
			r := jobs[2]
			if r.Schedule != "every 200ms" || !r.Eligible || r.Paused || r.Next == nil {
				t.Fatalf("node %d report job: %+v", i, r)
			}
			if r.LastRun == nil || r.LastRun.Token == 0 || r.LastRun.Result != "success" || len(r.Recent) < 2 || r.Token == 0 || r.Owner == "" || r.LastAt == nil {
				return false
			}
			if time.Since(r.LastRun.At) > 5*time.Second || nodeIndex(a.Cluster, r.LastRun.Node) < 0 {
				t.Fatalf("node %d: last run %+v is not a recent run of a member", i, r.LastRun)
			}
			if r.Recent[0] != *r.LastRun {
				t.Fatalf("node %d: Recent[0] %+v is not LastRun %+v", i, r.Recent[0], *r.LastRun)
			}
			for k := 1; k < len(r.Recent); k++ {
				if r.Recent[k].Token >= r.Recent[k-1].Token || !r.Recent[k].At.Before(r.Recent[k-1].At) {
					t.Fatalf("node %d: Recent not newest first: %+v", i, r.Recent)
				}
			}
			return len(r.Recent) <= 10
		}, "node %d never listed a recent run of report", i)
	}

	// History: newest first, the whole replicated list.
	clustertest.Eventually(t, 15*time.Second, func() bool {
		var runs []httpapi.Run
		getJSON(t, a.Servers[1].URL+"/v1/jobs/report/history", http.StatusOK, &runs)
		for k := 1; k < len(runs); k++ {
			if runs[k].Token >= runs[k-1].Token {
				t.Fatalf("history not newest first: %+v", runs)
			}
		}
		return len(runs) > 10
	}, "history of report never grew past ten runs")
	wantError(t, http.MethodGet, a.Servers[1].URL+"/v1/jobs/nope/history", "", http.StatusNotFound, `"nope"`, "clock, hourly, report")

	// Locks: a held lock, seen from another node.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lease, err := a.Nodes[0].TryLock(ctx, "db-migrate", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 10*time.Second, func() bool {
		var locks []httpapi.Lock
		getJSON(t, a.Servers[2].URL+"/v1/locks", http.StatusOK, &locks)
		return len(locks) == 1 && locks[0].Name == "db-migrate" && locks[0].Holder == a.Nodes[0].Name() &&
			locks[0].Token == lease.Token() && locks[0].Owner != "" && locks[0].Expires != nil && time.Until(*locks[0].Expires) > 30*time.Second
	}, "lock db-migrate never listed with its holder and token %d", lease.Token())
	if err := lease.Unlock(ctx); err != nil {
		t.Fatal(err)
	}

	// Health, readiness, metrics, profiles.
	var ok map[string]string
	getJSON(t, a.Servers[1].URL+"/healthz", http.StatusOK, &ok)
	getJSON(t, a.Servers[1].URL+"/readyz", http.StatusOK, &ok)
	if ok["status"] != "ready" {
		t.Fatalf("readyz body %v", ok)
	}
	code, body := call(t, http.MethodGet, a.Servers[0].URL+"/metrics", "")
	if code != http.StatusOK || !strings.Contains(string(body), "interlock_test_probe_total 3") {
		t.Fatalf("metrics: %d %s", code, body)
	}
	wantError(t, http.MethodGet, a.Servers[1].URL+"/metrics", "", http.StatusNotFound, "Config.Gatherer")
	code, body = call(t, http.MethodGet, a.Servers[0].URL+"/debug/pprof/goroutine?debug=1", "")
	if code != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("pprof goroutine: %d %.200s", code, body)
	}
	code, body = call(t, http.MethodGet, a.Servers[0].URL+"/debug/pprof/", "")
	if code != http.StatusOK || !strings.Contains(string(body), "heap") {
		t.Fatalf("pprof index: %d %s", code, body)
	}
	wantError(t, http.MethodGet, a.Servers[0].URL+"/debug/pprof/nope", "", http.StatusNotFound, `"nope"`)
	wantError(t, http.MethodGet, a.Servers[1].URL+"/debug/pprof/heap", "", http.StatusNotFound, "EnablePprof")

	// Wrong method and unknown path: JSON errors that say what exists.
	wantError(t, http.MethodDelete, a.Servers[1].URL+"/v1/status", "", http.StatusMethodNotAllowed, "GET")
	wantError(t, http.MethodGet, a.Servers[1].URL+"/v1/jobs/report/run", "", http.StatusMethodNotAllowed, "POST")
	wantError(t, http.MethodGet, a.Servers[1].URL+"/v2/everything", "", http.StatusNotFound, "/v1/status")

	// Without a quorum, the survivor is alive but not ready, and says why.
	for i := range a.Nodes {
		if i != 1 {
			a.kill(t, i)
		}
	}
	clustertest.Eventually(t, 15*time.Second, func() bool {
		code, _ := call(t, http.MethodGet, a.Servers[1].URL+"/readyz", "")
		return code == http.StatusServiceUnavailable
	}, "/readyz still 200 without a quorum")
	wantError(t, http.MethodGet, a.Servers[1].URL+"/readyz", "", http.StatusServiceUnavailable, "knows no leader")
	getJSON(t, a.Servers[1].URL+"/healthz", http.StatusOK, &ok)
	var st httpapi.Status
	getJSON(t, a.Servers[1].URL+"/v1/status", http.StatusOK, &st)
	if st.Ready || !strings.Contains(st.NotReady, "knows no leader") {
		t.Fatalf("status without quorum: ready %v, %q", st.Ready, st.NotReady)
	}
}
