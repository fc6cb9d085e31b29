package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
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

const token = "test-token-3f9a"

// apiCluster is a real cluster with one Scheduler and one API server per
// node. Jobs: "report" every 200ms, "clock" every 100ms (the tests' clock
// for waiting on ticks), "hourly" every hour (it runs only on request).
type apiCluster struct {
	*clustertest.Cluster
	Scheds  []*scheduler.Scheduler
	Servers []*httptest.Server
	stops   []func()
}

func startAPI(t *testing.T, n int, configure func(i int, c *httpapi.Config)) *apiCluster {
	t.Helper()
	c := clustertest.MakeCluster(t, n, clustertest.Options{})
	c.Leader(10 * time.Second)
	a := &apiCluster{Cluster: c}
	for i, node := range c.Nodes {
		s := scheduler.New(scheduler.Options{Cluster: node})
		for _, j := range []scheduler.Job{
			{Name: "report", Interval: 200 * time.Millisecond},
			{Name: "clock", Interval: 100 * time.Millisecond},
			{Name: "hourly", Interval: time.Hour},
		} {
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
				t.Errorf("scheduler run: %v", err)
			}
		}()
		stop := sync.OnceFunc(func() { cancel(); wg.Wait() })
		t.Cleanup(stop)
		a.stops = append(a.stops, stop)
		cfg := httpapi.Config{Node: node, Schedulers: []*scheduler.Scheduler{s}, EnableWrite: true, Token: token}
		if configure != nil {
			configure(i, &cfg)
		}
		h, err := httpapi.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		a.Scheds = append(a.Scheds, s)
		a.Servers = append(a.Servers, srv)
	}
	return a
}

// kill crashes node i after stopping its Scheduler.
func (a *apiCluster) kill(t *testing.T, i int) {
	t.Helper()
	a.stops[i]()
	if err := clustertest.Kill(a.Nodes[i]); err != nil {
		t.Fatal(err)
	}
	a.Nodes[i] = nil
}

// call sends a request and returns the status and body.
func call(t *testing.T, method, url, bearer string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// getJSON GETs url, expects code and decodes the body into v.
func getJSON(t *testing.T, url string, code int, v any) {
	t.Helper()
	got, b := call(t, http.MethodGet, url, "")
	if got != code {
		t.Fatalf("GET %s: %d %s, want %d", url, got, b, code)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, b)
	}
}

// wantError checks a status code and that the body is an Error whose
// text contains every one of parts.
func wantError(t *testing.T, method, url, bearer string, code int, parts ...string) {
	t.Helper()
	got, b := call(t, method, url, bearer)
	var e httpapi.Error
	if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
		t.Fatalf("%s %s: body %q is not a JSON Error (%v)", method, url, b, err)
	}
	if got != code {
		t.Fatalf("%s %s: %d %q, want %d", method, url, got, e.Error, code)
	}
	for _, p := range parts {
		if !strings.Contains(e.Error, p) {
			t.Fatalf("%s %s: error %q does not mention %q", method, url, e.Error, p)
		}
	}
}

func jobByName(jobs []httpapi.Job, name string) (httpapi.Job, bool) {
	for _, j := range jobs {
		if j.Name == name {
			return j, true
		}
	}
	return httpapi.Job{}, false
}

func nodeIndex(c *clustertest.Cluster, name string) int {
	for i, n := range c.Nodes {
		if n != nil && n.Name() == name {
			return i
		}
	}
	return -1
}
