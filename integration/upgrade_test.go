package integration

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// previousRelease is the commit of main whose interlock-node plays the
// previous release in TestRollingUpgradeFromPreviousRelease: main just
// before pause, run-now and run history were merged (bdc3225), so its
// nodes speak protocol 1, gossip no protocol version, and reject the
// pause entry as an unknown command. Move it forward when a later
// protocol version is added, to the last commit before that version.
const previousRelease = "9935e5bc0cb4bc8b9d948f56b034f311f9acd032"

// buildPreviousRelease builds interlock-node as of previousRelease from
// this checkout's git history (a CI clone has all of it) into a temporary
// directory, without -race to keep the build short.
func buildPreviousRelease(t *testing.T) string {
	t.Helper()
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("git rev-parse --show-toplevel: %v; the test needs this repository's git history", err)
	}
	repo := strings.TrimSpace(string(root))
	if out, err := exec.Command("git", "-C", repo, "cat-file", "-e", previousRelease+"^{commit}").CombinedOutput(); err != nil {
		t.Fatalf("commit %s is not in %s (%v: %s); fetch the full history (git fetch --unshallow)", previousRelease, repo, err, out)
	}
	src := t.TempDir()
	archive := exec.Command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", repo, previousRelease, src)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("extract %s: %v\n%s", previousRelease, err, out)
	}
	bin := filepath.Join(t.TempDir(), "interlock-node-previous")
	build := exec.Command("go", "build", "-o", bin, "./integration/cmd/interlock-node")
	build.Dir = src
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	started := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build interlock-node at %s: %v\n%s", previousRelease, err, out)
	}
	t.Logf("built interlock-node at %s in %s", previousRelease[:12], time.Since(started).Round(time.Millisecond))
	return bin
}

// pause asks node i to pause job through POST /pause and returns the HTTP
// status and body.
func (c *Cluster) pause(i int, job string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr(c.nodes[i].httpPort)+"/pause?job="+job, nil)
	if err != nil {
		return 0, "", err
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// TestRollingUpgradeFromPreviousRelease starts three nodes of the previous
// release (previousRelease) and replaces them one at a time, SIGTERM then
// the new build on the same name, ports and DataDir, as a rolling deploy
// does. While any old node is in the cluster, pause (a protocol 2 command)
// must be refused on the new nodes with an error naming an old node, and
// commit nothing the old nodes would reject; once the last old node is
// gone it must work and stop the job. Throughout, no tick may run twice,
// fencing tokens must keep the order grants allow, and at most one tick
// may be missed per restart.
func TestRollingUpgradeFromPreviousRelease(t *testing.T) {
	old := buildPreviousRelease(t)
	const interval = 200 * time.Millisecond
	c := newCluster(t, 3, clusterOpts{Jobs: "a:200ms,b:200ms", BoltOnly: true})
	for i := range 3 {
		c.SetBinary(i, old)
	}
	c.StartAll()
	c.WaitLeader(30 * time.Second)
	c.WaitRuns(30*time.Second, 5, func(r Run) bool { return r.Job == "a" }, "of a on the old release")
	begin := time.Now()

	for i := range 3 {
		if code := c.Stop(i); code != 0 {
			t.Fatalf("old %s exited %d after SIGTERM, want 0", c.Name(i), code)
		}
		c.SetBinary(i, "")
		launched := time.Now()
		c.Start(i)
		c.WaitLeader(30 * time.Second)
		t.Logf("%s upgraded: launch to ready %s", c.Name(i), time.Since(launched).Round(time.Millisecond))
		c.WaitRuns(30*time.Second, 1, func(r Run) bool { return r.Job == "a" && r.StartTime().After(launched) }, "of a after "+c.Name(i)+" was upgraded")
		if i == 2 {
			break
		}
		code, body, err := c.pause(i, "a")
		if err != nil {
			t.Fatalf("pause on %s: %v", c.Name(i), err)
		}
		oldName := c.Name(2)
		if code != http.StatusConflict || !strings.Contains(body, "pause needs every server on protocol >= 2") || !strings.Contains(body, " runs 1") {
			t.Fatalf("pause on upgraded %s with %s still old: HTTP %d %q, want 409 naming an old server", c.Name(i), oldName, code, body)
		}
		t.Logf("pause refused while old nodes remain: %s", body)
	}
	upgraded := time.Now()
	// Every node now gossips protocol 2; pause is accepted once gossip
	// has carried the last node's version to the node asked.
	var body string
	eventually(t, 15*time.Second, func() bool {
		var code int
		var err error
		code, body, err = c.pause(0, "a")
		return err == nil && code == http.StatusOK
	}, "pause still refused after every node was upgraded: %s", lazy(func() string { return body }))
	paused := time.Now()
	t.Logf("pause accepted %s after the last upgrade", paused.Sub(upgraded).Round(time.Millisecond))
	// b goes on; a must not run a tick scheduled after the pause (plus one
	// interval, for a claim already on its way).
	c.WaitRuns(30*time.Second, 5, func(r Run) bool { return r.Job == "b" && r.StartTime().After(paused.Add(interval)) }, "of b after the pause")
	runs := c.ReadRuns()
	checkRuns(t, runs)
	for _, r := range runs {
		if r.Job == "a" && time.Unix(0, r.At).After(paused.Add(interval)) {
			t.Errorf("a ran after it was paused: %v", r)
		}
	}
	for _, job := range []string{"a", "b"} {
		from, to := tickOf(interval, begin), tickOf(interval, upgraded)
		missed := missedTicks(runs, job, from, to)
		t.Logf("%s: %d of %d ticks missed across three upgrades: %v", job, len(missed), to-from+1, missed)
		if len(missed) > 3 {
			t.Errorf("%s missed %d ticks across three restarts, want at most one per restart: %v", job, len(missed), missed)
		}
	}
	t.Logf("runs per node: %v", perNode(runs))
}
