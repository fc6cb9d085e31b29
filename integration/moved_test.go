package integration

import (
	"slices"
	"testing"
	"time"
)

// TestSameNameNewAddress kills a follower with SIGKILL and starts it again
// with the same -name and -data-dir but new gossip and Raft ports, as a
// rescheduled container with a new IP. The leader replaces the stale Raft
// entry with the new address; the cluster never splits (every node names
// one leader, the configuration never holds anything but the three names,
// and ends as exactly those three voters), the two
// others keep their leader throughout (no election is stuck or forced by
// the returning node), and the job keeps running with no duplicates,
// including on the moved node.
func TestSameNameNewAddress(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{Jobs: "a:200ms"})
	c.WaitRuns(30*time.Second, 5, nil, "before the move")
	leader := c.WaitLeader(10 * time.Second)
	leaderName := c.Name(leader)
	moved := (leader + 1) % 3
	name := c.Name(moved)
	other := 3 - leader - moved
	oldRaft := c.RaftAddr(moved)

	killAt := time.Now()
	c.Kill(moved)
	c.Relocate(moved)
	newRaft := c.RaftAddr(moved)
	c.Launch(moved)
	t.Logf("killed %s (raft %s) and relaunched it at raft %s", name, oldRaft, newRaft)

	// observe checks what every running node says right now: at most one
	// leader named by anyone, never a configuration other than the three
	// names, and the two untouched nodes still following the old leader.
	leadersNamed := map[string]bool{}
	shrunk := 0 // answers that showed the configuration without the moved node
	observe := func() {
		for i := range 3 {
			st, err := c.Status(i)
			if err != nil || !st.Ready {
				continue
			}
			if st.Leader != "" {
				leadersNamed[st.Leader] = true
			}
			// The leader swaps the stale entry by removing it and adding
			// the new address, so the moved name may be missing for a
			// moment; nothing else may change.
			got := st.ServerNames()
			if !slices.Equal(got, c.Names()) && !slices.Equal(got, without(c.Names(), name)) {
				t.Fatalf("%s's configuration is %v, want %v (or without %s while it is replaced): %+v", st.Name, got, c.Names(), name, st.Servers)
			}
			if len(st.Voters()) != len(got) {
				t.Fatalf("%s's configuration has non-voters: %+v", st.Name, st.Servers)
			}
			if !slices.Equal(got, c.Names()) {
				shrunk++
			}
			if i != moved && st.Leader != leaderName {
				t.Errorf("%s names leader %q during the move, want the unchanged %s", st.Name, st.Leader, leaderName)
			}
		}
		if len(leadersNamed) > 1 {
			t.Fatalf("nodes named more than one leader: %v", sortedKeys(leadersNamed))
		}
	}

	// Ready: cluster.Start returns only once the leader has this node, at
	// its new address, in the configuration and it has caught up.
	var readyAt, replacedAt time.Time
	eventually(t, 45*time.Second, func() bool {
		observe()
		if readyAt.IsZero() {
			if st, err := c.Status(moved); err == nil && st.Ready {
				readyAt = time.Now()
			}
		}
		if replacedAt.IsZero() {
			st := c.MustStatus(leader)
			if sv, ok := st.Server(name); ok && sv.Address == newRaft {
				replacedAt = time.Now()
			}
		}
		return !readyAt.IsZero() && !replacedAt.IsZero()
	}, "%s at its new address never became ready (ready %v) and replaced in the configuration (replaced %v)", name,
		lazy(func() string { return readyAt.String() }), lazy(func() string { return replacedAt.String() }))
	t.Logf("%s: new address in the leader's configuration %s after the kill; ready %s after the kill",
		name, replacedAt.Sub(killAt).Round(time.Millisecond), readyAt.Sub(killAt).Round(time.Millisecond))

	// Every node: the same leader, exactly three voters, the new address.
	eventually(t, 15*time.Second, func() bool {
		observe()
		for i := range 3 {
			st, err := c.Status(i)
			if err != nil || !st.Ready || st.Leader != leaderName || !slices.Equal(st.Voters(), c.Names()) {
				return false
			}
			if sv, _ := st.Server(name); sv.Address != newRaft {
				return false
			}
		}
		return true
	}, "the nodes never agreed on leader %s with three voters and %s at %s", leaderName, name, newRaft)
	if got := c.WaitLeader(10 * time.Second); got != leader {
		t.Errorf("leader changed from %s to %s during the move", leaderName, c.Name(got))
	}

	// Jobs: the moved node runs again; nothing ran twice.
	runs := c.WaitRuns(30*time.Second, 3, func(r Run) bool { return r.Node == name && r.StartTime().After(readyAt) }, "by the moved node")
	observe()
	checkRuns(t, runs)
	// The two others covered the move: report the ticks lost while the
	// moved node was down (it owned about a third of them until gossip
	// marked it failed).
	k0, k1 := tickOf(200*time.Millisecond, killAt), tickOf(200*time.Millisecond, readyAt)
	missed := missedTicks(runs, "a", k0, k1)
	t.Logf("ticks of a from the kill to ready: %d, missed %d; runs by %s after the kill, before ready: %d",
		k1-k0+1, len(missed), c.Name(other), countRuns(runs, func(r Run) bool {
			return r.Node == c.Name(other) && r.StartTime().After(killAt) && r.StartTime().Before(readyAt)
		}))
	t.Logf("runs per node: %v; leaders named by anyone: %v; status answers without %s in the configuration: %d", perNode(runs), sortedKeys(leadersNamed), name, shrunk)
}
