package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

const bootstrapLine = "bootstrapped cluster"

// TestFollowerKill9Restart kills a follower with SIGKILL and restarts it on
// the same DataDir and ports: it rejoins from its stored state without a
// second bootstrap, the configuration stays the same three servers, it
// catches up with the leader's log and runs jobs again.
func TestFollowerKill9Restart(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{Jobs: "a:200ms,b:500ms:100ms"})
	leader := c.WaitLeader(10 * time.Second)
	follower := (leader + 1) % 3
	name := c.Name(follower)
	c.WaitRuns(30*time.Second, 3, func(r Run) bool { return r.Node == name }, "by the follower before the kill")

	before := c.MustStatus(leader).Servers
	if got := c.MustStatus(leader).ServerNames(); !slices.Equal(got, c.Names()) {
		t.Fatalf("leader's configuration before the kill is %v, want %v", got, c.Names())
	}
	// The logs must show bootstraps at all, or the no-second-bootstrap
	// check below would prove nothing. (A node that receives the
	// configuration from an elected leader before it saw all three members
	// does not bootstrap, so not every first life has the line.)
	requireBootstrapLogged(t, c)

	killAt := time.Now()
	c.Kill(follower)
	// The other two carry on without it.
	c.WaitRuns(30*time.Second, 5, func(r Run) bool { return r.StartTime().After(killAt) }, "by the survivors after the kill")

	restartAt := time.Now()
	c.Start(follower)
	t.Logf("%s restarted and ready after %s", name, time.Since(restartAt).Round(time.Millisecond))

	// No second bootstrap.
	logs := c.Logs(follower)
	if len(logs) != 2 {
		t.Fatalf("%s has %d lives, want 2", name, len(logs))
	}
	if strings.Contains(logs[1], bootstrapLine) {
		t.Errorf("%s bootstrapped again after its restart:\n%s", name, grepLines(logs[1], bootstrapLine))
	}

	// Same three-server configuration, on the leader and on the restarted
	// node, with the same addresses.
	leader = c.WaitLeader(15 * time.Second)
	for _, i := range []int{leader, follower} {
		st := c.MustStatus(i)
		if fmt.Sprint(sortedServers(st.Servers)) != fmt.Sprint(sortedServers(before)) {
			t.Errorf("%s's configuration after the restart is %+v, want the one before, %+v", c.Name(i), st.Servers, before)
		}
	}

	// Catches up: its applied index reaches what the leader had applied.
	target := c.MustStatus(leader).AppliedIndex
	eventually(t, 20*time.Second, func() bool {
		st, err := c.Status(follower)
		return err == nil && st.AppliedIndex >= target
	}, "%s's applied index never reached the leader's %d", name, target)

	// Runs jobs again.
	runs := c.WaitRuns(30*time.Second, 3, func(r Run) bool { return r.Node == name && r.StartTime().After(restartAt) }, "by the restarted node")
	checkRuns(t, runs)
	t.Logf("runs per node: %v", perNode(runs))
}

// TestFullClusterRestart kills all three nodes with SIGKILL and restarts
// them from their DataDirs: no tick at or before the last tick recorded
// before the kill runs again, nothing runs twice and the jobs resume.
func TestFullClusterRestart(t *testing.T) {
	jobs := []string{"a", "b"}
	c := startCluster(t, 3, clusterOpts{Jobs: "a:200ms,b:500ms:100ms"})
	c.WaitRuns(30*time.Second, 10, func(r Run) bool { return r.Job == "a" }, "of a before the kill")

	c.KillAll()
	killedAt := time.Now()
	before := c.ReadRuns()
	last := map[string]int64{}
	for _, j := range jobs {
		last[j] = maxTick(before, j)
	}
	t.Logf("all killed; last ticks recorded: %v; runs per node: %v", last, perNode(before))

	restartAt := time.Now()
	c.StartAll()
	leader := c.WaitLeader(30 * time.Second)
	t.Logf("all restarted, ready and agreeing on leader %s after %s", c.Name(leader), time.Since(restartAt).Round(time.Millisecond))

	requireBootstrapLogged(t, c)
	for i := range 3 {
		logs := c.Logs(i)
		if strings.Contains(logs[1], bootstrapLine) {
			t.Errorf("%s bootstrapped again after the restart:\n%s", c.Name(i), grepLines(logs[1], bootstrapLine))
		}
	}
	if got := c.MustStatus(leader).ServerNames(); !slices.Equal(got, c.Names()) {
		t.Errorf("configuration after the restart is %v, want %v", got, c.Names())
	}

	after := func(r Run) bool { return r.StartTime().After(killedAt) }
	c.WaitRuns(30*time.Second, 10, func(r Run) bool { return r.Job == "a" && after(r) }, "of a after the restart")
	runs := c.WaitRuns(30*time.Second, 3, func(r Run) bool { return r.Job == "b" && after(r) }, "of b after the restart")
	checkRuns(t, runs)
	for _, r := range runs {
		if after(r) && r.Tick <= last[r.Job] {
			t.Errorf("tick at or before the last one recorded before the kill (%d) ran again after the restart: %v", last[r.Job], r)
		}
	}
	t.Logf("runs per node: %v", perNode(runs))
}

// requireBootstrapLogged fails the test unless some node's first life
// logged the bootstrap line.
func requireBootstrapLogged(t *testing.T, c *Cluster) {
	t.Helper()
	for i := range c.nodes {
		if strings.Contains(c.Logs(i)[0], bootstrapLine) {
			return
		}
	}
	t.Fatalf("no node's first life logged %q; checks for a second bootstrap would prove nothing", bootstrapLine)
}

func sortedServers(s []serverStatus) []serverStatus {
	s = slices.Clone(s)
	slices.SortFunc(s, func(a, b serverStatus) int { return strings.Compare(a.Name, b.Name) })
	return s
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
