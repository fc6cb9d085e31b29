package integration

import (
	"slices"
	"testing"
	"time"
)

// TestGracefulStop stops two of three nodes with SIGTERM, one after the
// other (a follower, then the leader of the remaining two). Each exits 0
// and is out of the leader's Raft configuration as soon as its process has
// exited; the last node keeps a leader (itself) and keeps running the job;
// the survivors' gossip shows the stopped nodes as left, never failed.
func TestGracefulStop(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{Jobs: "a:200ms"})
	c.WaitRuns(30*time.Second, 10, nil, "before the first stop")

	// First a follower.
	leader := c.WaitLeader(10 * time.Second)
	first := (leader + 1) % 3
	firstName := c.Name(first)
	stopAt := time.Now()
	if code := c.Stop(first); code != 0 {
		t.Fatalf("%s exited %d after SIGTERM, want 0", firstName, code)
	}
	stoppedAt := time.Now()
	t.Logf("follower %s: SIGTERM to exit %s", firstName, stoppedAt.Sub(stopAt).Round(time.Millisecond))
	// At once: no waiting between its exit and this read.
	st := c.MustStatus(leader)
	if slices.Contains(st.ServerNames(), firstName) {
		t.Errorf("%s exited, but leader %s's configuration still lists it: %+v", firstName, st.Name, st.Servers)
	}
	survivors := []int{leader, 3 - leader - first}
	waitLeft(t, c, survivors, firstName)

	leader = c.WaitLeader(10 * time.Second)
	for _, i := range survivors {
		if got, want := c.MustStatus(i).ServerNames(), without(c.Names(), firstName); !slices.Equal(got, want) {
			t.Errorf("%s's configuration after %s left is %v, want %v", c.Name(i), firstName, got, want)
		}
	}
	c.WaitRuns(30*time.Second, 5, func(r Run) bool { return r.StartTime().After(stoppedAt) }, "after the first stop")

	// Then the leader of the two: it hands leadership over and leaves.
	second := leader
	secondName := c.Name(second)
	last := survivors[0]
	if last == second {
		last = survivors[1]
	}
	lastName := c.Name(last)
	stopAt = time.Now()
	if code := c.Stop(second); code != 0 {
		t.Fatalf("%s exited %d after SIGTERM, want 0", secondName, code)
	}
	stoppedAt = time.Now()
	t.Logf("leader %s: SIGTERM to exit %s", secondName, stoppedAt.Sub(stopAt).Round(time.Millisecond))
	st = c.MustStatus(last)
	if got := st.ServerNames(); !slices.Equal(got, []string{lastName}) {
		t.Errorf("%s exited, but the last node's configuration is %v, want [%s]", secondName, got, lastName)
	}
	waitLeft(t, c, []int{last}, firstName, secondName)

	// The last node leads itself and keeps running the job.
	eventually(t, 10*time.Second, func() bool {
		st, err := c.Status(last)
		return err == nil && st.IsLeader && st.Leader == lastName
	}, "the last node %s does not lead", lastName)
	runs := c.WaitRuns(30*time.Second, 5, func(r Run) bool { return r.Node == lastName && r.StartTime().After(stoppedAt) }, "by the last node")
	checkRuns(t, runs)
	for _, r := range runs {
		if r.Node != lastName && r.StartTime().After(stoppedAt) {
			t.Errorf("a stopped node recorded a run after the last stop: %v", r)
		}
	}
	t.Logf("runs per node: %v", perNode(runs))
}

// waitLeft waits until every observer's gossip shows each of names as
// "left", and fails at once if any observer shows one as "failed".
func waitLeft(t *testing.T, c *Cluster, observers []int, names ...string) {
	t.Helper()
	eventually(t, 10*time.Second, func() bool {
		ok := true
		for _, i := range observers {
			st := c.MustStatus(i)
			for _, name := range names {
				switch s := st.MemberStatus(name); s {
				case "left":
				case "failed":
					t.Fatalf("%s's gossip shows %s as failed, want left: %+v", st.Name, name, st.Members)
				default:
					ok = false
				}
			}
		}
		return ok
	}, "gossip of %v never showed %v as left", observers, names)
}

func without(names []string, drop string) []string {
	var out []string
	for _, n := range names {
		if n != drop {
			out = append(out, n)
		}
	}
	return out
}
