package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/scheduler"
)

// TestUIInChromium starts a three-node cluster whose schedulers share a job
// every 200 ms, serves each node's API on 127.0.0.1 and renders each node's
// /ui in headless Chromium. Every page must list the three nodes with one
// and the same leader, and show the job with a run at least as recent as
// the one the API reported just before; the leader's page is also
// screenshotted (INTERLOCK_UI_SCREENSHOT=path copies it, see README).
func TestUIInChromium(t *testing.T) {
	chromium(t)
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	leader := c.Leader(10 * time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	// Stop the schedulers before the cluster's cleanup shuts the nodes down.
	defer func() { cancel(); running.Wait() }()
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		s := scheduler.New(scheduler.Options{Cluster: n, Logger: clustertest.Logger(n.Name())})
		if err := s.Add(scheduler.Job{Name: "report", Interval: 200 * time.Millisecond,
			Func: func(context.Context, scheduler.Run) error { return nil }}); err != nil {
			t.Fatal(err)
		}
		running.Go(func() { _ = s.Run(ctx) })
		h, err := New(Config{Node: n, Schedulers: []*scheduler.Scheduler{s}})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h) // on 127.0.0.1
		defer srv.Close()
		urls[i] = srv.URL
	}

	for i, n := range c.Nodes {
		// The page shows what the API says; wait until the API says the
		// cluster is whole and the job has runs, and keep the latest token.
		var minToken uint64
		clustertest.Eventually(t, 20*time.Second, func() bool {
			var st Status
			var jobs []Job
			if getJSON(urls[i]+"/v1/status", &st) != nil || getJSON(urls[i]+"/v1/jobs", &jobs) != nil {
				return false
			}
			alive := 0
			for _, m := range st.Members {
				if m.Gossip == "alive" && m.Role != "none" {
					alive++
				}
			}
			if alive != 3 || st.Leader == "" || len(jobs) != 1 || jobs[0].LastRun == nil || len(jobs[0].Recent) < 3 {
				return false
			}
			minToken = jobs[0].LastRun.Token
			return true
		}, "%s's API never showed three alive members, a leader and three runs of the job", n.Name())

		dom := render(t, browserRun{url: urls[i] + "/ui", width: 1280, height: 800, budget: 3 * time.Second})
		if body := findAll(dom, "body", "data-state"); len(body) != 1 || body[0].attrs["data-state"] != "ok" {
			t.Fatalf("%s's page did not load its data: %v\n%s", n.Name(), body, dom)
		}
		var names, leaders []string
		for _, row := range findAll(dom, "tr", "data-node") {
			names = append(names, row.attrs["data-node"])
			if row.attrs["data-role"] == "leader" {
				leaders = append(leaders, row.attrs["data-node"])
			}
		}
		if len(names) != 3 || len(leaders) != 1 || leaders[0] != c.Nodes[leader].Name() {
			t.Errorf("%s's page lists nodes %v with leaders %v, want three nodes and one leader, %s",
				n.Name(), names, leaders, c.Nodes[leader].Name())
		}
		jobs := findAll(dom, "tr", "data-job")
		if len(jobs) != 1 || jobs[0].attrs["data-job"] != "report" {
			t.Fatalf("%s's page shows job rows %v, want one, report\n%s", n.Name(), jobs, dom)
		}
		lastRun, _ := strconv.ParseUint(jobs[0].attrs["data-last-run-token"], 10, 64)
		if grant, _ := strconv.ParseUint(jobs[0].attrs["data-token"], 10, 64); grant == 0 || lastRun < minToken {
			t.Errorf("%s's page shows grant token %d and last run token %d, want a run with a token of at least %d",
				n.Name(), grant, lastRun, minToken)
		}
		chips := findAll(dom, "li", "data-run-token")
		if len(chips) < 3 || len(chips) > 10 {
			t.Errorf("%s's page shows %d of the job's latest runs, want 3 to 10", n.Name(), len(chips))
		}
		for _, chip := range chips {
			if tok, _ := strconv.ParseUint(chip.attrs["data-run-token"], 10, 64); tok == 0 || chip.attrs["data-run-node"] == "" {
				t.Errorf("%s's page shows a run without node or token: %v", n.Name(), chip.attrs)
			}
		}
	}

	// A short budget: in virtual time the page's clock runs ahead of the
	// cluster's by the budget, which would show the next tick as past.
	shot := filepath.Join(t.TempDir(), "ui.png")
	render(t, browserRun{url: urls[leader] + "/ui", width: 1200, height: 760, budget: 300 * time.Millisecond, screenshot: shot})
	checkPNG(t, shot, 1200, 760, 30_000)
	copyScreenshot(t, shot)
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
