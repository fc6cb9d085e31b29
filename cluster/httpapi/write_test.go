package httpapi_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/cluster/httpapi"
)

// post sends an authorized POST, expects 200 and returns the Action.
func post(t *testing.T, url string) httpapi.Action {
	t.Helper()
	code, b := call(t, http.MethodPost, url, token)
	if code != http.StatusOK {
		t.Fatalf("POST %s: %d %s", url, code, b)
	}
	var act httpapi.Action
	if err := json.Unmarshal(b, &act); err != nil || act.Message == "" {
		t.Fatalf("POST %s: body %s (%v)", url, b, err)
	}
	return act
}

func history(t *testing.T, url, job string) []httpapi.Run {
	t.Helper()
	var runs []httpapi.Run
	getJSON(t, url+"/v1/jobs/"+job+"/history", http.StatusOK, &runs)
	return runs
}

// TestWriteRefusals checks that writes are refused, with a JSON Error
// saying how to fix it, when they are off or the token is missing or
// wrong, and that a bad Config is refused by New.
func TestWriteRefusals(t *testing.T) {
	a := startAPI(t, 1, nil)
	n := a.Nodes[0]
	off, err := httpapi.New(httpapi.Config{Node: n, Schedulers: a.Scheds})
	if err != nil {
		t.Fatal(err)
	}
	srvOffServer := httptest.NewServer(off)
	t.Cleanup(srvOffServer.Close)
	srvOff := srvOffServer.URL
	url := a.Servers[0].URL
	for _, path := range []string{"/v1/jobs/report/run", "/v1/jobs/report/pause", "/v1/jobs/report/resume", "/v1/peers/x/remove", "/v1/leader/transfer"} {
		wantError(t, http.MethodPost, srvOff+path, token, http.StatusForbidden, "EnableWrite")
		wantError(t, http.MethodPost, url+path, "", http.StatusUnauthorized, "Authorization: Bearer")
		wantError(t, http.MethodPost, url+path, token+"x", http.StatusUnauthorized, "wrong bearer token")
	}
	wantError(t, http.MethodPost, url+"/v1/jobs/nope/run", token, http.StatusNotFound, `"nope"`, "report")
	wantError(t, http.MethodPost, url+"/v1/peers/nobody/remove", token, http.StatusNotFound, "nobody", n.Name())
	wantError(t, http.MethodPost, url+"/v1/peers/"+n.Name()+"/remove", token, http.StatusBadRequest, "itself")

	// Mounted under a prefix, as the README shows.
	mux := http.NewServeMux()
	mux.Handle("/interlock/", http.StripPrefix("/interlock", off))
	prefixed := httptest.NewServer(mux)
	t.Cleanup(prefixed.Close)
	var st httpapi.Status
	getJSON(t, prefixed.URL+"/interlock/v1/status", http.StatusOK, &st)
	if st.Node != n.Name() {
		t.Fatalf("status under a prefix: %+v", st)
	}
	wantError(t, http.MethodPost, prefixed.URL+"/interlock/v1/jobs/report/run", token, http.StatusForbidden, "EnableWrite")

	for name, cfg := range map[string]httpapi.Config{
		"Node":       {},
		"Token":      {Node: n, EnableWrite: true},
		"Schedulers": {Node: n, Schedulers: append(a.Scheds, nil)},
	} {
		if _, err := httpapi.New(cfg); err == nil || !errors.Is(err, httpapi.ErrInvalidConfig) || !strings.Contains(err.Error(), name) {
			t.Errorf("New with a bad %s: %v", name, err)
		}
	}
}

// TestWriteOperations runs each write operation against a live
// three-node cluster and checks its effect cluster-wide.
func TestWriteOperations(t *testing.T) {
	a := startAPI(t, 3, nil)
	leaderName := a.Nodes[a.Leader(10*time.Second)].Name()
	li := nodeIndex(a.Cluster, leaderName)
	fi := (li + 1) % 3 // a follower
	var before httpapi.Status
	getJSON(t, a.Servers[li].URL+"/v1/status", http.StatusOK, &before)

	// Run now: the hourly job, which never runs by itself here, runs once
	// with a token newer than anything committed before the request.
	if got := history(t, a.Servers[fi].URL, "hourly"); len(got) != 0 {
		t.Fatalf("hourly ran before the request: %+v", got)
	}
	act := post(t, a.Servers[fi].URL+"/v1/jobs/hourly/run")
	if act.Action != "run" || act.Target != "hourly" || act.Node != a.Nodes[fi].Name() {
		t.Fatalf("run-now answer: %+v", act)
	}
	for i, srv := range a.Servers {
		clustertest.Eventually(t, 15*time.Second, func() bool { return len(history(t, srv.URL, "hourly")) == 1 }, "node %d never saw the requested run", i)
		run := history(t, srv.URL, "hourly")[0]
		if run.Tick >= 0 || run.Token <= before.CommitIndex || run.Result != "success" || nodeIndex(a.Cluster, run.Node) < 0 {
			t.Fatalf("node %d: requested run %+v, want a negative tick and a token above %d", i, run, before.CommitIndex)
		}
	}

	// Pause: no node runs report while the clock job ticks on.
	act = post(t, a.Servers[fi].URL+"/v1/jobs/report/pause")
	pausedAt := time.Now()
	if act.Action != "pause" || act.Target != "report" {
		t.Fatalf("pause answer: %+v", act)
	}
	for i, srv := range a.Servers {
		clustertest.Eventually(t, 5*time.Second, func() bool {
			var jobs []httpapi.Job
			getJSON(t, srv.URL+"/v1/jobs", http.StatusOK, &jobs)
			j, ok := jobByName(jobs, "report")
			return ok && j.Paused
		}, "node %d never showed report paused", i)
	}
	ticksAfter := func(job string, after time.Time) int {
		n := 0
		for _, r := range history(t, a.Servers[li].URL, job) {
			if r.At.After(after) {
				n++
			}
		}
		return n
	}
	// A tick granted before the pause committed still runs (Pause's
	// contract), and its claim may have gone out up to a lead ahead of its
	// instant: at most a quarter of the job's StartDeadline, which is its
	// 200 ms Interval (scheduler/lead.go). So a report tick up to 50 ms
	// after the pause may run; none later may.
	const maxLead = 200 * time.Millisecond / 4
	clustertest.Eventually(t, 15*time.Second, func() bool { return ticksAfter("clock", pausedAt) >= 8 }, "the clock job stopped ticking")
	if n := ticksAfter("report", pausedAt.Add(maxLead)); n != 0 {
		t.Fatalf("report ran %d times for ticks more than %s after the pause: %+v", n, maxLead, history(t, a.Servers[li].URL, "report"))
	}

	// Resume: report runs again.
	act = post(t, a.Servers[li].URL+"/v1/jobs/report/resume")
	resumedAt := time.Now()
	if act.Action != "resume" {
		t.Fatalf("resume answer: %+v", act)
	}
	clustertest.Eventually(t, 15*time.Second, func() bool { return ticksAfter("report", resumedAt) >= 2 }, "report never ran after the resume")

	// Transfer: to a name that is no voter, refused (through a follower,
	// which forwards it); asked of a follower, moves leadership to the
	// named follower.
	wantError(t, http.MethodPost, a.Servers[fi].URL+"/v1/leader/transfer?to=nobody", token, http.StatusNotFound, "nobody")
	target := a.Nodes[fi].Name()
	act = post(t, a.Servers[fi].URL+"/v1/leader/transfer?to="+target)
	if act.Action != "transfer-leadership" || act.Target != target {
		t.Fatalf("transfer answer: %+v", act)
	}
	for i, srv := range a.Servers {
		clustertest.Eventually(t, 10*time.Second, func() bool {
			var st httpapi.Status
			getJSON(t, srv.URL+"/v1/status", http.StatusOK, &st)
			return st.Leader == target
		}, "node %d never saw %s lead", i, target)
	}

	// Remove peer: refused while the peer lives; once it is dead, a node
	// that does not lead removes it through the leader.
	victim := (fi + 1) % 3 // neither the new leader nor fi
	via := li              // the old leader, now a follower
	if victim == via {
		t.Fatalf("test setup: victim %d is the node asked", victim)
	}
	name := a.Nodes[victim].Name()
	wantError(t, http.MethodPost, a.Servers[via].URL+"/v1/peers/"+name+"/remove", token, http.StatusConflict, "alive")
	a.kill(t, victim)
	clustertest.Eventually(t, 20*time.Second, func() bool {
		var st httpapi.Status
		getJSON(t, a.Servers[via].URL+"/v1/status", http.StatusOK, &st)
		for _, m := range st.Members {
			if m.Name == name {
				return m.Gossip != "alive"
			}
		}
		return false
	}, "gossip never saw %s fail", name)
	act = post(t, a.Servers[via].URL+"/v1/peers/"+name+"/remove")
	if act.Action != "remove-peer" || act.Target != name {
		t.Fatalf("remove-peer answer: %+v", act)
	}
	for _, i := range []int{fi, via} {
		clustertest.Eventually(t, 10*time.Second, func() bool {
			var st httpapi.Status
			getJSON(t, a.Servers[i].URL+"/v1/status", http.StatusOK, &st)
			voters := 0
			for _, m := range st.Members {
				if m.Name == name && m.Role != "none" {
					return false
				}
				if m.Role == "leader" || m.Role == "voter" {
					voters++
				}
			}
			return voters == 2 && st.Ready
		}, "node %d still lists %s in the Raft configuration", i, name)
	}
}
