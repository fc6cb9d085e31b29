// TestDeadServerCleanupKeepsLiveVoter began as a known-bug test (the
// cleanup removed a voter that had come back while gossip still called it
// failed, leaving a configuration that could not commit) and now guards the
// rule in cluster/autopilot.go: a server is removed only when gossip and
// Raft have both lost it.
package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDeadServerCleanupKeepsLiveVoter kills three of five voters
// at once (-dead-server-timeout 2s) and waits until the two survivors'
// gossip has had all three failed for longer than the timeout. Then one of
// the three comes back on its DataDir and ports, so three of the five
// voters are up: a quorum, and a leader is elected with its vote. Its
// -join lists only the two nodes that stay dead, so it is up in Raft but
// not (yet) in the survivors' gossip, which still holds its old failed
// record — the state a restarted node is in until gossip takes its new
// incarnation, which under load can be after the election.
//
// Expected: the cluster recovers with the three live nodes as voters and
// the leader removes the two that stay dead, and only those: the one that
// came back answers the leader's stats calls with a fresh Raft last
// contact, so it is kept however long gossip calls it failed. Judged from
// gossip alone (before autopilot) it was among the first two "dead"
// voters in configuration order and was removed, and the configuration
// left (four servers, two of them dead) could never commit.
func TestDeadServerCleanupKeepsLiveVoter(t *testing.T) {
	const timeout = 2 * time.Second
	c := startCluster(t, 5, clusterOpts{Jobs: "a:200ms", DeadServerTimeout: timeout})
	c.WaitRuns(30*time.Second, 5, nil, "before the kill")
	leader := c.WaitLeader(10 * time.Second)

	// The followers in configuration order: the first comes back, the
	// next two stay dead, the last survives with the leader.
	var order []int
	for _, s := range c.MustStatus(leader).Servers {
		if i := c.Index(s.Name); i != leader {
			order = append(order, i)
		}
	}
	back, dead, survivors := order[0], order[1:3], []int{leader, order[3]}
	victims := append([]int{back}, dead...)
	killAt := time.Now()
	c.KillNodes(victims...)
	t.Logf("killed %s, %s, %s; %s and %s survive", c.Name(back), c.Name(dead[0]), c.Name(dead[1]), c.Name(leader), c.Name(order[3]))

	eventually(t, 60*time.Second, func() bool {
		for _, i := range survivors {
			st, err := c.Status(i)
			if err != nil || !st.Ready {
				return false
			}
			for _, v := range victims {
				m, ok := st.Member(c.Name(v))
				if !ok || m.Status != "failed" || time.Since(time.Unix(0, m.Since)) < timeout+time.Second {
					return false
				}
			}
		}
		return true
	}, "the survivors' gossip never had all three failed for %s", timeout)
	t.Logf("survivors' gossip has had all three failed for over %s (%s after the kill)", timeout, time.Since(killAt).Round(time.Millisecond))

	var deadGossip []string
	for _, i := range dead {
		deadGossip = append(deadGossip, c.GossipAddrs()[i])
	}
	c.SetJoin(back, deadGossip)
	restartAt := time.Now()
	c.Launch(back)

	live := append(slices.Clone(survivors), back)
	want := []string{c.Name(back), c.Name(survivors[0]), c.Name(survivors[1])}
	slices.Sort(want)
	var view string
	ok := false
	for time.Since(restartAt) < 30*time.Second && !ok {
		var views []string
		ok = true
		for _, i := range live {
			st, err := c.Status(i)
			if err != nil || !st.Ready {
				views = append(views, fmt.Sprintf("%s: not ready (%v)", c.Name(i), err))
				ok = false
				continue
			}
			views = append(views, fmt.Sprintf("%s: leader %q voters %v", st.Name, st.Leader, st.Voters()))
			for _, w := range want {
				if sv, in := st.Server(w); !in || !sv.Voter {
					ok = false
				}
			}
			if st.Leader == "" {
				ok = false
			}
		}
		view = strings.Join(views, "; ")
		time.Sleep(50 * time.Millisecond)
	}
	if !ok {
		var logs []string
		for _, i := range live {
			for _, l := range c.Logs(i) {
				if g := grepLines(l, "dead server"); g != "" {
					logs = append(logs, g)
				}
			}
		}
		t.Fatalf("30 s after %s came back (three of five voters up), the live nodes have no working configuration with %v as voters; last view: %s\nlogs:\n%s",
			c.Name(back), want, view, strings.Join(logs, "\n"))
	}
	t.Logf("recovered %s after the restart: %s", time.Since(restartAt).Round(time.Millisecond), view)
	// The two that stay dead are removed; the three live ones stay voters.
	eventually(t, 45*time.Second, func() bool {
		for _, i := range live {
			st, err := c.Status(i)
			if err != nil || !st.Ready {
				return false
			}
			if got := st.Voters(); !slices.Equal(got, want) || len(st.Servers) != len(want) {
				for _, w := range want {
					if sv, in := st.Server(w); !in || !sv.Voter {
						t.Fatalf("%s's configuration dropped the live voter %s: voters %v", st.Name, w, got)
					}
				}
				return false
			}
		}
		return true
	}, "the dead voters %s and %s were never removed", c.Name(dead[0]), c.Name(dead[1]))
	t.Logf("dead voters removed %s after the restart", time.Since(restartAt).Round(time.Millisecond))
	runs := c.WaitRuns(30*time.Second, 10, func(r Run) bool { return r.StartTime().After(restartAt) }, "after the restart")
	checkRuns(t, runs)
}
