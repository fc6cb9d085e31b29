package integration

import (
	"slices"
	"testing"
	"time"
)

// TestSevenNodesPromotion starts seven nodes with -expect 7 and
// -max-voters 5: the configuration is five voters and two non-voters, and
// the non-voters run jobs like the rest. Two voters (not the leader) are
// killed with SIGKILL and stay dead; once gossip has had them failed for
// -dead-server-timeout (2 s) the leader removes them and promotes both
// non-voters, so the cluster is back to five voters, never more than five
// and never fewer than three, and the job keeps running with no
// duplicates.
func TestSevenNodesPromotion(t *testing.T) {
	const timeout = 2 * time.Second
	c := startCluster(t, 7, clusterOpts{Jobs: "a:200ms", Expect: 7, MaxVoters: 5, DeadServerTimeout: timeout})
	leader := c.WaitLeader(10 * time.Second)
	st := c.MustStatus(leader)
	if len(st.Servers) != 7 || len(st.Voters()) != 5 || len(st.NonVoters()) != 2 {
		t.Fatalf("configuration after bootstrap is %+v, want 5 voters and 2 non-voters", st.Servers)
	}
	nonVoters := st.NonVoters()
	t.Logf("leader %s; voters %v, non-voters %v", c.Name(leader), st.Voters(), nonVoters)
	for i := range 7 {
		if got := c.MustStatus(i); !slices.Equal(got.Voters(), st.Voters()) || !slices.Equal(got.NonVoters(), nonVoters) {
			t.Errorf("%s sees voters %v, non-voters %v; the leader sees %v, %v", got.Name, got.Voters(), got.NonVoters(), st.Voters(), nonVoters)
		}
	}
	// Non-voters run jobs too.
	c.WaitRuns(30*time.Second, 1, func(r Run) bool { return slices.Contains(nonVoters, r.Node) }, "by a non-voter")

	// Kill two voters other than the leader.
	var victims []int
	var victimNames []string
	for _, name := range st.Voters() {
		if i := c.Index(name); i != leader && len(victims) < 2 {
			victims = append(victims, i)
			victimNames = append(victimNames, name)
		}
	}
	killAt := time.Now()
	c.KillNodes(victims...)

	// The leader's configuration must go to five voters: the three live
	// ones and the two promoted non-voters, with the dead ones gone. Watch
	// every live node's view on the way: never more than five voters,
	// never fewer than three, never a dead node removed less than the
	// timeout after the leader's gossip marked it failed.
	want := slices.Clone(st.Voters())
	for _, n := range victimNames {
		want = without(want, n)
	}
	want = append(want, nonVoters...)
	slices.Sort(want)
	var removedAt, promotedAt time.Time
	eventually(t, 30*time.Second, func() bool {
		for _, i := range c.Live() {
			s, err := c.Status(i)
			now := time.Now()
			if err != nil || !s.Ready {
				continue
			}
			if v := len(s.Voters()); v > 5 || v < 3 {
				t.Fatalf("%s's configuration has %d voters: %+v", s.Name, v, s.Servers)
			}
			// The leader's view decides (the one from before the kill,
			// unless a loaded machine forced an election).
			if !s.IsLeader {
				continue
			}
			gone := 0
			for _, n := range victimNames {
				if _, in := s.Server(n); in {
					continue
				}
				gone++
				if m, _ := s.Member(n); m.Status != "failed" || now.Sub(time.Unix(0, m.Since)) < timeout {
					t.Fatalf("%s removed %s at %s, while its gossip record is %+v: before DeadServerTimeout %s", s.Name, n, now.Format("15:04:05.000"), m, timeout)
				}
			}
			if gone == 2 && removedAt.IsZero() {
				removedAt = now
			}
			if slices.Equal(s.Voters(), want) && slices.Equal(s.ServerNames(), want) && promotedAt.IsZero() {
				promotedAt = now
			}
		}
		return !removedAt.IsZero() && !promotedAt.IsZero()
	}, "the leader's configuration never became the five voters %v", want)
	t.Logf("killed voters %v; both removed %s after the kill; non-voters %v promoted, five voters again, %s after the kill",
		victimNames, removedAt.Sub(killAt).Round(time.Millisecond), nonVoters, promotedAt.Sub(killAt).Round(time.Millisecond))

	// Every live node converges on that configuration and the same leader.
	for _, i := range c.Live() {
		eventually(t, 10*time.Second, func() bool {
			s, err := c.Status(i)
			return err == nil && slices.Equal(s.Voters(), want) && slices.Equal(s.ServerNames(), want)
		}, "%s never saw the five voters %v", c.Name(i), want)
	}
	if got := c.WaitLeader(10 * time.Second); got != leader {
		t.Logf("leader changed from %s to %s", c.Name(leader), c.Name(got))
	}

	runs := c.WaitRuns(30*time.Second, 10, func(r Run) bool { return r.StartTime().After(promotedAt) }, "after the promotion")
	checkRuns(t, runs)
	for _, r := range runs {
		if slices.Contains(victimNames, r.Node) && r.StartTime().After(killAt) {
			t.Errorf("a killed node recorded a run after its kill: %v", r)
		}
	}
	k0, k1 := tickOf(200*time.Millisecond, killAt), maxTick(runs, "a")
	t.Logf("ticks of a from the kill to the last run: %d, missed %d; runs per node: %v", k1-k0+1, len(missedTicks(runs, "a", k0, k1)), perNode(runs))
}
