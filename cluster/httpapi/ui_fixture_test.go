package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// hostile is text an attacker could get into the API's answers (a node
// name, a tag, a job's error): if the page inserted it as markup, the
// dumped DOM would hold an <img> or <script> element of its making.
const hostile = `<img src=x onerror="document.body.dataset.pwned=1">"'&`

// fixtureAPI serves /ui and fixed v1/status and v1/jobs answers under
// prefix, as an application that mounts the API below a path of its own
// would. jobsStatus, if not 200, makes v1/jobs fail with an Error body.
type fixtureAPI struct {
	status     Status
	jobs       []Job
	jobsStatus int
	// gets counts GET v1/status requests, to see the page refresh itself.
	gets atomic.Int64
}

func (f *fixtureAPI) handler(prefix string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+prefix+"/ui", uiHandler(Config{}))
	mux.HandleFunc("GET "+prefix+"/v1/status", func(w http.ResponseWriter, r *http.Request) {
		f.gets.Add(1)
		writeFixture(w, http.StatusOK, f.status)
	})
	mux.HandleFunc("GET "+prefix+"/v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		if f.jobsStatus != 0 && f.jobsStatus != http.StatusOK {
			writeFixture(w, f.jobsStatus, Error{Error: "jobs: " + hostile})
			return
		}
		writeFixture(w, http.StatusOK, f.jobs)
	})
	return mux
}

func writeFixture(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func ptr[T any](v T) *T { return &v }

// fixtureCluster is three members as the leader node-b sees them, one of
// them suspect and one with a hostile tag, and two jobs, one paused.
func fixtureCluster(now time.Time) (Status, []Job) {
	st := Status{
		Node: "node-b", Cluster: "orders", Leader: "node-b", Role: "leader",
		Term: 7, CommitIndex: 1204, AppliedIndex: 1204, LastIndex: 1204, Ready: true,
		Members: []Member{
			{Name: "node-a", GossipAddr: "10.0.0.1:7946", RaftAddr: "10.0.0.1:7947", Gossip: "alive", Role: "voter",
				Healthy: ptr(true), LastContactSeconds: ptr(0.012), Tags: map[string]string{"zone": "eu-1"}},
			{Name: "node-b", GossipAddr: "10.0.0.2:7946", RaftAddr: "10.0.0.2:7947", Gossip: "alive", Role: "leader",
				Healthy: ptr(true), LastContactSeconds: ptr(0.0)},
			{Name: "node-c", GossipAddr: "10.0.0.3:7946", RaftAddr: "10.0.0.3:7947", Gossip: "suspect", Role: "voter",
				Healthy: ptr(false), LastContactSeconds: ptr(4.2), Tags: map[string]string{"note": hostile}},
		},
	}
	var recent []Run
	for i := range 10 {
		at := now.Add(-time.Duration(i+1) * time.Second).Truncate(time.Second)
		node := []string{"node-a", "node-b", "node-c"}[i%3]
		r := Run{Node: node, Token: uint64(1200 - 3*i), Tick: at.Unix(), At: at, Start: at.Add(3 * time.Millisecond),
			DurationSeconds: 0.021, Result: "success"}
		if i == 4 {
			r.Result, r.Error = "error", "upstream said "+hostile
		}
		recent = append(recent, r)
	}
	next := now.Add(800 * time.Millisecond)
	last := recent[0].At
	jobs := []Job{
		{Name: "report", Schedule: "every 1s", Next: &next, LastAt: &last, Owner: "node-a", Token: 1200,
			Eligible: true, LastRun: &recent[0], Recent: recent},
		{Name: "nightly " + hostile, Schedule: "cron 0 3 * * *", Paused: true, Eligible: false},
	}
	return st, jobs
}

// TestUIRendersFixturesInChromium renders the page in headless Chromium
// against fixed answers, mounted below a prefix, on a desktop and a phone
// viewport: it must show every member and job, mark the one leader, list
// the ten latest runs with tokens, keep hostile strings as text, and
// refresh itself without reloading.
func TestUIRendersFixturesInChromium(t *testing.T) {
	chromium(t)
	st, jobs := fixtureCluster(time.Now())
	api := &fixtureAPI{status: st, jobs: jobs}
	srv := httptest.NewServer(api.handler("/ops"))
	defer srv.Close()

	dom := render(t, browserRun{url: srv.URL + "/ops/ui", width: 1280, height: 900, budget: 5 * time.Second})

	body := findAll(dom, "body", "data-state")
	if len(body) != 1 || body[0].attrs["data-state"] != "ok" {
		t.Fatalf("body state = %v, want data-state=ok\n%s", body, dom)
	}
	if _, pwned := body[0].attrs["data-pwned"]; pwned {
		t.Fatal("an API string ran as markup: the hostile <img>'s onerror set data-pwned")
	}
	if n, _ := strconv.Atoi(body[0].attrs["data-refreshes"]); n < 2 {
		t.Errorf("data-refreshes = %q after 5 s of virtual time, want at least 2 (the page refreshes every 2 s)", body[0].attrs["data-refreshes"])
	}
	if got := api.gets.Load(); got < 2 {
		t.Errorf("the server saw %d GET v1/status, want at least 2", got)
	}
	if strings.Contains(dom, "<img") || strings.Count(dom, "<script") != 1 {
		t.Errorf("the DOM holds an element made from API text\n%s", dom)
	}
	if !strings.Contains(dom, "&lt;img src=x") {
		t.Errorf("hostile text is not shown escaped\n%s", dom)
	}

	nodes := findAll(dom, "tr", "data-node")
	var names, leaders []string
	for _, n := range nodes {
		names = append(names, n.attrs["data-node"])
		if n.attrs["data-role"] == "leader" {
			leaders = append(leaders, n.attrs["data-node"])
		}
	}
	if strings.Join(names, ",") != "node-a,node-b,node-c" || strings.Join(leaders, ",") != "node-b" {
		t.Errorf("node rows %v with leaders %v, want node-a,node-b,node-c with leader node-b", names, leaders)
	}
	if g := findAll(dom, "tr", `data-node`)[2].attrs["data-gossip"]; g != "suspect" {
		t.Errorf("node-c gossip = %q, want suspect", g)
	}

	rows := findAll(dom, "tr", "data-job")
	if len(rows) != 2 {
		t.Fatalf("%d job rows, want 2\n%s", len(rows), dom)
	}
	if r := rows[0].attrs; r["data-job"] != "report" || r["data-token"] != "1200" || r["data-paused"] != "false" {
		t.Errorf("report row attributes %v, want data-token=1200 data-paused=false", r)
	}
	if r := rows[1].attrs; r["data-job"] != "nightly "+hostile || r["data-paused"] != "true" {
		t.Errorf("second job row attributes %v, want the hostile name, paused", r)
	}
	chips := findAll(dom, "li", "data-run-token")
	if len(chips) != 10 {
		t.Fatalf("%d run chips, want the 10 latest runs", len(chips))
	}
	if c := chips[0]; c.attrs["data-run-node"] != "node-a" || c.attrs["data-run-token"] != "1200" || c.text != "node-a #1200" {
		t.Errorf("newest run chip %+v, want node-a #1200", c)
	}
	if c := chips[4]; c.attrs["data-run-result"] != "error" || !strings.Contains(c.attrs["title"], "upstream said <img") {
		t.Errorf("fifth chip %+v, want an error result with its error text in the tooltip", c)
	}

	// Screenshots a person can look at: a desktop and a phone viewport.
	for _, v := range []struct {
		name          string
		width, height int
	}{{"desktop", 1280, 900}, {"phone", 390, 844}} {
		shot := filepath.Join(t.TempDir(), "ui-fixture-"+v.name+".png")
		render(t, browserRun{url: srv.URL + "/ops/ui", width: v.width, height: v.height, budget: 3 * time.Second, screenshot: shot})
		checkPNG(t, shot, v.width, v.height, 20_000)
	}
}

// TestUIShowsAnUnreachableAPI renders the page against a node whose
// v1/jobs fails: the page says so, with the answer's error text as text,
// and keeps refreshing.
func TestUIShowsAnUnreachableAPI(t *testing.T) {
	chromium(t)
	st, jobs := fixtureCluster(time.Now())
	api := &fixtureAPI{status: st, jobs: jobs, jobsStatus: http.StatusServiceUnavailable}
	srv := httptest.NewServer(api.handler(""))
	defer srv.Close()

	dom := render(t, browserRun{url: srv.URL + "/ui", width: 800, height: 600, budget: 5 * time.Second})
	body := findAll(dom, "body", "data-state")
	if len(body) != 1 || body[0].attrs["data-state"] != "error" {
		t.Fatalf("body %v, want data-state=error\n%s", body, dom)
	}
	errBox := findAll(dom, "div", "role")
	if len(errBox) != 1 {
		t.Fatalf("no #error box\n%s", dom)
	}
	if _, hidden := errBox[0].attrs["hidden"]; hidden || !strings.Contains(errBox[0].text, "v1/jobs: 503 jobs: <img src=x") {
		t.Errorf("error box %+v, want it shown with the API's error text", errBox[0])
	}
	if strings.Contains(dom, "<img") {
		t.Errorf("the error text was inserted as markup\n%s", dom)
	}
	if got := api.gets.Load(); got < 2 {
		t.Errorf("the server saw %d GET v1/status, want at least 2: the page must keep retrying", got)
	}
}
