package integration

import (
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestNodeBinaryExitCodes checks the node command's contract that the
// scenarios rely on: bad flags and a failing cluster.Start exit 2 with the
// reason on stderr; a single node started with -expect 1 serves /status,
// runs its job and exits 0 on SIGTERM.
func TestNodeBinaryExitCodes(t *testing.T) {
	ports := freePorts(t, 3)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad job", []string{"-name", "x", "-jobs", "a:soon"}, `-jobs entry "a:soon"`},
		{"bad cron job", []string{"-name", "x", "-jobs", "c:cron=* 25 * * *"}, `hour field "25"`},
		{"bad log level", []string{"-name", "x", "-log-level", "loud"}, "-log-level"},
		{"no name", []string{"-expect", "1"}, "-name is required"},
		{"bad dead-server-timeout", []string{"-name", "x", "-dead-server-timeout", "soon"}, "-dead-server-timeout"},
		// cluster.Start rejects a node that could never be in a cluster.
		{"start error", []string{"-name", "x", "-bind", addr(ports[0]), "-raft", addr(ports[1]), "-expect", "0"}, "invalid config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			cmd := exec.Command(nodeBin, tc.args...)
			cmd.Stderr = &stderr
			err := cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != 2 {
				t.Fatalf("exit code %d (%v), want 2; stderr:\n%s", code, err, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr does not mention %q:\n%s", tc.want, stderr.String())
			}
		})
	}

	t.Run("single node", func(t *testing.T) {
		c := startCluster(t, 1, clusterOpts{Jobs: "a:100ms,b:300ms:50ms"})
		st := c.MustStatus(0)
		if !st.IsLeader || st.Leader != "n0" || !slices.Equal(st.ServerNames(), []string{"n0"}) || st.AppliedIndex == 0 {
			t.Errorf("single node status %+v, want a leader of itself with applied entries", st)
		}
		runs := c.WaitRuns(20*time.Second, 5, func(r Run) bool { return r.Job == "b" }, "of b")
		checkRuns(t, runs)
		for _, r := range runs {
			if r.Node != "n0" || r.Token == 0 || r.At != r.Tick*int64(map[string]time.Duration{"a": 100 * time.Millisecond, "b": 300 * time.Millisecond}[r.Job]) {
				t.Errorf("malformed run %+v", r)
			}
		}
		if code := c.Stop(0); code != 0 {
			t.Errorf("exit code %d after SIGTERM, want 0", code)
		}
		if log := c.Logs(0)[0]; !strings.Contains(log, "interlock-node: stopped") {
			t.Errorf("stderr has no clean stop line:\n%s", log)
		}
	})
}

// TestAnalysis checks the run analysis helpers on made-up runs, so a
// scenario's clean result means something.
func TestAnalysis(t *testing.T) {
	runs := []Run{
		{Job: "a", Tick: 10, Node: "n0", Token: 5},
		{Job: "a", Tick: 11, Node: "n1", Token: 7},
		{Job: "a", Tick: 11, Node: "n2", Token: 8}, // duplicate
		{Job: "a", Tick: 14, Node: "n0", Token: 6}, // a#11 granted late, after a#14: fine
		{Job: "b", Tick: 11, Node: "n0", Token: 1}, // other job, same tick: fine
	}
	// c#1 granted after six later ticks, more than the state machine's
	// record allows.
	for k := range int64(6) {
		runs = append(runs, Run{Job: "c", Tick: 2 + k, Node: "n0", Token: uint64(20 + k)})
	}
	runs = append(runs, Run{Job: "c", Tick: 1, Node: "n1", Token: 30})
	sortRuns(runs)
	dups := duplicates(runs)
	if len(dups) != 1 || len(dups[jobTick{"a", 11}]) != 2 {
		t.Errorf("duplicates = %v, want only a#11 twice", dups)
	}
	if got := missedTicks(runs, "a", 9, 14); !slices.Equal(got, []int64{9, 12, 13}) {
		t.Errorf("missedTicks = %v, want [9 12 13]", got)
	}
	if got := missedTicks(runs, "b", 11, 11); len(got) != 0 {
		t.Errorf("missedTicks(b) = %v, want none", got)
	}
	if v := tokenViolations(runs); len(v) != 1 || !strings.HasPrefix(v[0], "c#1 ") {
		t.Errorf("tokenViolations = %v, want one naming c#1", v)
	}
	if got := maxTick(runs, "a"); got != 14 {
		t.Errorf("maxTick = %d, want 14", got)
	}
	ft := &fakeT{}
	checkRuns(ft, runs)
	if ft.errors != 2 {
		t.Errorf("checkRuns reported %d errors, want 2 (one duplicate, one token)", ft.errors)
	}
	ft = &fakeT{}
	checkRuns(ft, []Run{runs[0], runs[1], runs[4]})
	if ft.errors != 0 {
		t.Errorf("checkRuns reported %d errors on clean runs", ft.errors)
	}
}

// fakeT counts Errorf calls.
type fakeT struct {
	testing.TB
	errors int
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Errorf(string, ...any) { f.errors++ }
