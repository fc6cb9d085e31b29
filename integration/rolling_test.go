package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestGracefulRestartRejoins restarts nodes one at a time with SIGTERM and
// an immediate start on the same name, ports and DataDir, as a rolling
// deploy does: the leader, then a follower, twice. A graceful stop takes
// the node out of the Raft configuration; each time it must be back in it
// as a voter, ready, within 10 s (a kill -9 restart takes under 1 s), and
// run jobs again, with no tick run twice.
//
// Regression test: before commit 2ae6eb5 the leader that removed a
// leaving node on its request refused to add it back for 30 s
// (leavingMemory), even when it was alive again in a new process, so a
// rolling restart held each node out for up to 30 s.
func TestGracefulRestartRejoins(t *testing.T) {
	const want = 10 * time.Second
	c := startCluster(t, 3, clusterOpts{Jobs: "a:200ms"})
	c.WaitRuns(30*time.Second, 5, nil, "before the first restart")
	type window struct {
		what       string
		stop, back time.Time
	}
	var windows []window
	for round := range 4 {
		leader := c.WaitLeader(15 * time.Second)
		i, role := leader, "leader"
		if round%2 == 1 {
			i, role = (leader+1)%3, "follower"
		}
		name := c.Name(i)
		stopAt := time.Now()
		if code := c.Stop(i); code != 0 {
			t.Fatalf("%s exited %d after SIGTERM, want 0", name, code)
		}
		stopped := time.Since(stopAt)
		c.Launch(i)
		launched := time.Now()
		var ready time.Duration
		for ready == 0 {
			if st, err := c.Status(i); err == nil && st.Ready {
				ready = time.Since(launched)
			} else if time.Since(launched) > want {
				var removals []string
				for j := range 3 {
					if j != i {
						removals = append(removals, grepLines(strings.Join(c.Logs(j), ""), "server="+name))
					}
				}
				t.Fatalf("round %d: %s (%s) not ready %s after its graceful restart; the others logged:\n%s", round, name, role, want, strings.Join(removals, "\n"))
			}
			time.Sleep(20 * time.Millisecond)
		}
		windows = append(windows, window{fmt.Sprintf("round %d (%s)", round, role), stopAt, launched.Add(ready)})
		leader = c.WaitLeader(15 * time.Second)
		t.Logf("round %d: %s (%s): SIGTERM to exit %s, launch to ready %s; leader now %s", round, name, role,
			stopped.Round(time.Millisecond), ready.Round(time.Millisecond), c.Name(leader))
		for j := range 3 {
			st := c.MustStatus(j)
			if !slices.Equal(st.Voters(), c.Names()) || !slices.Equal(st.ServerNames(), c.Names()) {
				t.Errorf("round %d: %s's configuration after %s came back is %+v, want three voters", round, st.Name, name, st.Servers)
			}
		}
		c.WaitRuns(30*time.Second, 1, func(r Run) bool { return r.Node == name && r.StartTime().After(launched) }, "by "+name+" after its restart")
	}
	runs := c.ReadRuns()
	checkRuns(t, runs)
	// For the record: ticks of the 200 ms job that no node ran from each
	// SIGTERM until the node was ready again.
	var missed []string
	for _, w := range windows {
		k0, k1 := tickOf(200*time.Millisecond, w.stop), tickOf(200*time.Millisecond, w.back)
		missed = append(missed, fmt.Sprintf("%s %d of %d", w.what, len(missedTicks(runs, "a", k0, k1)), k1-k0+1))
	}
	t.Logf("ticks missed from SIGTERM to ready: %s", strings.Join(missed, ", "))
	t.Logf("runs per node: %v", perNode(runs))
}
