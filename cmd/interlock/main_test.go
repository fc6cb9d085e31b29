package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/cluster/httpapi"
	"github.com/interlockraft/interlock/scheduler"
)

func TestMain(m *testing.M) {
	clustertest.VerifyTestMain(m)
}

const token = "cli-test-token"

// startNode starts a one-node cluster with a Scheduler running "report"
// every 100ms and "hourly", and serves its API.
func startNode(t *testing.T) (*httptest.Server, *scheduler.Scheduler, *clustertest.Cluster) {
	t.Helper()
	c := clustertest.MakeCluster(t, 1, clustertest.Options{})
	s := scheduler.New(scheduler.Options{Cluster: c.Nodes[0]})
	for _, j := range []scheduler.Job{{Name: "report", Interval: 100 * time.Millisecond}, {Name: "hourly", Interval: time.Hour}} {
		j.Func = func(context.Context, scheduler.Run) error { return nil }
		if err := s.Add(j); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.Run(ctx); err != nil {
			t.Errorf("scheduler: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	h, err := httpapi.New(httpapi.Config{Node: c.Nodes[0], Schedulers: []*scheduler.Scheduler{s}, EnableWrite: true, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, s, c
}

// closedAddr returns the URL of a port nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// column returns the offset of word in line, or -1.
func column(line, word string) int { return strings.Index(line, word) }

// TestCLI runs each command against a live one-node cluster's API and
// checks its output and exit code.
func TestCLI(t *testing.T) {
	srv, sched, c := startNode(t)
	node := c.Nodes[0].Name()
	clustertest.Eventually(t, 15*time.Second, func() bool { return len(sched.History("report")) >= 2 }, "report never ran twice")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lease, err := c.Nodes[0].TryLock(ctx, "migrations", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Unlock(ctx)
	notAPI := httptest.NewServer(http.NotFoundHandler())
	defer notAPI.Close()
	unreachable := closedAddr(t)

	cases := []struct {
		name string
		env  map[string]string
		args []string
		code int
		// out and errs must appear in stdout and stderr.
		out, errs []string
	}{
		{"status", nil, []string{"-addr", srv.URL, "status"}, exitOK, []string{"Node:", node + " (leader)", "Leader:", "Ready:", "yes", "NAME", "ROLE", "leader", "alive"}, nil},
		{"flags after the command", nil, []string{"members", "-addr", srv.URL}, exitOK, []string{"NAME", "GOSSIP", node, "leader", "alive", "yes"}, nil},
		{"address from the environment", map[string]string{"INTERLOCK_ADDR": srv.URL}, []string{"jobs"}, exitOK, []string{"NAME", "SCHEDULE", "report", "every 100ms", "active", "hourly", "every 1h0m0s", "success"}, nil},
		{"history", nil, []string{"-addr", srv.URL, "history", "report"}, exitOK, []string{"AT", "TOKEN", node, "success"}, nil},
		{"locks", nil, []string{"-addr", srv.URL, "locks"}, exitOK, []string{"HOLDER", "migrations", node}, nil},
		{"unknown job", nil, []string{"-addr", srv.URL, "history", "nope"}, exitFailed, nil, []string{`no job "nope"`, "report", "HTTP 404"}},
		{"write without token", nil, []string{"-addr", srv.URL, "run", "hourly"}, exitFailed, nil, []string{"missing bearer token", "HTTP 401"}},
		{"write with a wrong token", nil, []string{"-addr", srv.URL, "-token", "nope", "run", "hourly"}, exitFailed, nil, []string{"wrong bearer token"}},
		{"run now", nil, []string{"-addr", srv.URL, "-token", token, "run", "hourly"}, exitOK, []string{node + ": requested a run of hourly"}, nil},
		{"pause, token from the environment", map[string]string{"INTERLOCK_TOKEN": token}, []string{"-addr", srv.URL, "pause", "report"}, exitOK, []string{"paused report"}, nil},
		{"paused shows", nil, []string{"-addr", srv.URL, "jobs"}, exitOK, []string{"paused"}, nil},
		{"resume", nil, []string{"-addr", srv.URL, "-token", token, "resume", "report"}, exitOK, []string{"resumed report"}, nil},
		{"remove self", nil, []string{"-addr", srv.URL, "-token", token, "remove-peer", node}, exitFailed, nil, []string{"itself", "HTTP 400"}},
		{"remove unknown", nil, []string{"-addr", srv.URL, "-token", token, "remove-peer", "ghost"}, exitFailed, nil, []string{"ghost", "HTTP 404"}},
		{"transfer with no other voter", nil, []string{"-addr", srv.URL, "-token", token, "transfer-leadership"}, exitFailed, nil, []string{"transfer leadership"}},
		{"no command", nil, nil, exitUsage, nil, []string{"no command given", "Exit codes:"}},
		{"unknown command", nil, []string{"frobnicate"}, exitUsage, nil, []string{`unknown command "frobnicate"`}},
		{"missing argument", nil, []string{"-addr", srv.URL, "history"}, exitUsage, nil, []string{"history needs exactly one JOB"}},
		{"extra argument", nil, []string{"-addr", srv.URL, "jobs", "x"}, exitUsage, nil, []string{"jobs takes no arguments"}},
		{"bad flag", nil, []string{"-verbose", "status"}, exitUsage, nil, []string{"-verbose"}},
		{"bad address", nil, []string{"-addr", "node1:8080", "status"}, exitUsage, nil, []string{"-addr", "http://"}},
		{"help", nil, []string{"-h"}, exitOK, []string{"Usage: interlock", "Exit codes:"}, nil},
		{"not an API", nil, []string{"-addr", notAPI.URL, "status"}, exitFailed, nil, []string{"404 Not Found", "not the Interlock API"}},
		{"unreachable", nil, []string{"-addr", unreachable, "status"}, exitUnreachable, nil, []string{"cannot reach " + unreachable, "connection refused"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("INTERLOCK_ADDR", "")
			t.Setenv("INTERLOCK_TOKEN", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, out, errOut := runCLI(tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			for _, w := range tc.out {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.errs {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if tc.code == exitOK && errOut != "" {
				t.Errorf("stderr on success: %s", errOut)
			}
			if (tc.code == exitFailed || tc.code == exitUnreachable) && (out != "" || strings.Count(errOut, "\n") != 1) {
				t.Errorf("a failure must print one line to stderr and nothing to stdout; stdout %q, stderr %q", out, errOut)
			}
		})
	}

	// Tables are aligned: each column starts at the same offset in the
	// header and in every row.
	_, out, _ := runCLI("-addr", srv.URL, "jobs")
	_, status, _ := runCLI("-addr", srv.URL, "status")
	t.Logf("status:\n%s\njobs:\n%s", status, out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("jobs table has %d lines, want a header and two rows:\n%s", len(lines), out)
	}
	for _, col := range []struct{ header, row string }{{"SCHEDULE", "every"}, {"STATE", "active"}} {
		want := column(lines[0], col.header)
		for _, l := range lines[1:] {
			if got := column(l, col.row); got != want {
				t.Errorf("column %s at %d in the header, %s at %d in row %q", col.header, want, col.row, got, l)
			}
		}
	}

	// -json prints the API's own JSON.
	code, out, _ := runCLI("-addr", srv.URL, "-json", "jobs")
	var jobs []httpapi.Job
	if code != exitOK || json.Unmarshal([]byte(out), &jobs) != nil || len(jobs) != 2 || jobs[1].Name != "report" || jobs[1].LastRun == nil || jobs[1].LastRun.Token == 0 {
		t.Fatalf("jobs -json: exit %d, %s", code, out)
	}
	code, out, _ = runCLI("-addr", srv.URL, "status", "-json")
	var st httpapi.Status
	if code != exitOK || json.Unmarshal([]byte(out), &st) != nil || st.Node != node || st.Leader != node || len(st.Members) != 1 {
		t.Fatalf("status -json: exit %d, %s", code, out)
	}
	// The requested run of hourly shows in its history, as a run-now.
	clustertest.Eventually(t, 10*time.Second, func() bool {
		_, out, _ := runCLI("-addr", srv.URL, "history", "hourly")
		return strings.Contains(out, "run-now") && strings.Contains(out, "success")
	}, "the requested run of hourly never showed in its history")
	code, out, _ = runCLI("-addr", srv.URL, "-json", "-token", token, "pause", "hourly")
	var act httpapi.Action
	if code != exitOK || json.Unmarshal([]byte(out), &act) != nil || act.Action != "pause" || act.Target != "hourly" {
		t.Fatalf("pause -json: exit %d, %s", code, out)
	}
}
