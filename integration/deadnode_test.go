package integration

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDeadNodeRemoved kills a follower of three with SIGKILL and never
// brings it back. With -dead-server-timeout 2s the leader removes it from
// the Raft configuration once gossip has had it failed for 2 s, never
// sooner; the other two keep a leader and keep running the job.
func TestDeadNodeRemoved(t *testing.T) {
	const timeout = 2 * time.Second
	c := startCluster(t, 3, clusterOpts{Jobs: "a:200ms", DeadServerTimeout: timeout})
	c.WaitRuns(30*time.Second, 5, nil, "before the kill")

	leader := c.WaitLeader(10 * time.Second)
	victim := (leader + 1) % 3
	name := c.Name(victim)
	survivors := []int{leader, 3 - leader - victim}
	killAt := time.Now()
	c.Kill(victim)

	// Poll the leader (whichever survivor says it leads: the one there is,
	// unless a loaded machine forces an election) until its configuration
	// no longer lists the victim. Every answer that still lists it is
	// fine; the first that does not must come at least DeadServerTimeout
	// after the moment that leader's gossip marked the victim failed
	// (Since, same host clock).
	var failedSeen, removedSeen time.Time
	var failedSince time.Time
	remover := -1
	eventually(t, 30*time.Second, func() bool {
		var st Status
		var answered time.Time
		for _, i := range survivors {
			s, err := c.Status(i)
			if err == nil && s.Ready && s.IsLeader {
				st, answered, remover = s, time.Now(), i
			}
		}
		if answered.IsZero() {
			return false
		}
		m, known := st.Member(name)
		if known && m.Status == "failed" && failedSeen.IsZero() {
			failedSeen = answered
			failedSince = time.Unix(0, m.Since)
		}
		if _, in := st.Server(name); in {
			return false
		}
		removedSeen = answered
		if !known || m.Status != "failed" {
			t.Fatalf("%s removed %s while its gossip shows it as %q (known %v), want failed", st.Name, name, m.Status, known)
		}
		failedSince = time.Unix(0, m.Since)
		return true
	}, "leader never removed the dead node %s", name)

	t.Logf("killed %s; leader's gossip marked it failed %s after the kill (seen at %s); removed from the configuration %s after the kill, %s after it was marked failed",
		name, failedSince.Sub(killAt).Round(time.Millisecond), failedSeen.Sub(killAt).Round(time.Millisecond),
		removedSeen.Sub(killAt).Round(time.Millisecond), removedSeen.Sub(failedSince).Round(time.Millisecond))
	if removedSeen.Sub(killAt) < timeout {
		t.Errorf("removed %s after the kill, before DeadServerTimeout %s", removedSeen.Sub(killAt).Round(time.Millisecond), timeout)
	}
	if removedSeen.Sub(failedSince) < timeout {
		t.Errorf("removed %s after gossip marked it failed, before DeadServerTimeout %s", removedSeen.Sub(failedSince).Round(time.Millisecond), timeout)
	}
	// The library logs the removal once Raft has committed it, just after
	// the configuration the leader serves has changed.
	var log string
	eventually(t, 5*time.Second, func() bool {
		log = c.Logs(remover)[0]
		return strings.Contains(grepLines(log, "removed dead server"), "server="+name)
	}, "leader %s did not log the removal of %s:\n%s", c.Name(remover), name, lazy(func() string { return grepLines(log, "dead") }))

	// Both survivors converge on a two-voter configuration and a leader,
	// and the job goes on.
	want := without(c.Names(), name)
	for _, i := range survivors {
		eventually(t, 10*time.Second, func() bool {
			st, err := c.Status(i)
			return err == nil && slices.Equal(st.ServerNames(), want) && slices.Equal(st.Voters(), want)
		}, "%s's configuration never became the two voters %v", c.Name(i), want)
	}
	c.WaitLeader(10 * time.Second)
	runs := c.WaitRuns(30*time.Second, 10, func(r Run) bool { return r.StartTime().After(removedSeen) }, "after the removal")
	checkRuns(t, runs)
	for _, r := range runs {
		if r.Node == name && r.StartTime().After(killAt) {
			t.Errorf("the killed node recorded a run after its kill: %v", r)
		}
	}
	t.Logf("runs per node: %v", perNode(runs))
}

// TestDeadVotersKeepQuorum kills three of five voters at once, with a
// -dead-server-timeout of 2 s. The two survivors have no quorum, so no
// job runs and nothing may shrink the configuration: it never drops below
// three voters (it stays at five), even once gossip has had a dead voter
// failed for longer than the timeout. When the three come back, the
// cluster has the same five voters and a leader, and the job runs again.
func TestDeadVotersKeepQuorum(t *testing.T) {
	const timeout = 2 * time.Second
	c := startCluster(t, 5, clusterOpts{Jobs: "a:200ms", DeadServerTimeout: timeout})
	c.WaitRuns(30*time.Second, 5, nil, "before the kill")

	leader := c.WaitLeader(10 * time.Second)
	// Kill three followers: the leader survives, so it is the node that
	// would remove servers if anything did.
	var victims, survivors []int
	for k := 1; k <= 4; k++ {
		i := (leader + k) % 5
		if len(victims) < 3 {
			victims = append(victims, i)
		} else {
			survivors = append(survivors, i)
		}
	}
	survivors = append(survivors, leader)
	var victimNames []string
	for _, i := range victims {
		victimNames = append(victimNames, c.Name(i))
	}
	killAt := time.Now()
	c.KillNodes(victims...)
	t.Logf("killed %v at once; survivors %s (the leader) and %s", victimNames, c.Name(leader), c.Name(survivors[0]))

	// minVoters checks every live node's configuration and returns the
	// smallest voter count seen; it fails the test below three.
	minSeen := 5
	checkVoters := func() {
		for _, i := range c.Live() {
			st, err := c.Status(i)
			if err != nil || !st.Ready {
				continue
			}
			if v := len(st.Voters()); v < minSeen {
				minSeen = v
			}
			if len(st.Voters()) < 3 {
				t.Fatalf("%s's configuration dropped to %d voters %v, below a quorum of the original five", st.Name, len(st.Voters()), st.Voters())
			}
		}
	}

	// Hold the three down until both survivors' gossip has had at least
	// one of them failed for DeadServerTimeout plus a reconcile interval
	// (2 s), or for 30 s after the kill, whichever comes first, checking
	// the configurations all along. (With only two members left to
	// confirm a suspicion, and probes slowed by memberlist's awareness of
	// its own failed probes, gossip takes 12 s to well over 30 s to mark
	// all three failed; the first one goes sooner.)
	const settle = 2*time.Second + 500*time.Millisecond
	const maxHold = 30 * time.Second
	failedFor := time.Duration(0) // the shortest, over the survivors, of the longest a victim has been failed
	failedCount := 0              // victims failed on both survivors
	for time.Since(killAt) < maxHold && failedFor < timeout+settle {
		checkVoters()
		failedFor, failedCount = time.Duration(1<<62), len(victimNames)
		for _, i := range survivors {
			st, err := c.Status(i)
			if err != nil || !st.Ready {
				failedFor, failedCount = 0, 0
				break
			}
			longest, count := time.Duration(0), 0
			for _, n := range victimNames {
				if m, ok := st.Member(n); ok && m.Status == "failed" {
					count++
					longest = max(longest, time.Since(time.Unix(0, m.Since)))
				}
			}
			failedFor, failedCount = min(failedFor, longest), min(failedCount, count)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("held the three down %s: on both survivors' gossip %d of them failed, one for %s; configurations never below %d voters",
		time.Since(killAt).Round(time.Millisecond), failedCount, failedFor.Round(time.Millisecond), minSeen)
	for _, i := range survivors {
		st := c.MustStatus(i)
		if len(st.Servers) != 5 {
			t.Errorf("%s's configuration changed without a quorum: %+v", st.Name, st.Servers)
		}
		if st.IsLeader {
			t.Errorf("%s still says it leads without a quorum", st.Name)
		}
	}

	// All three come back at once: quorum again, the same five voters, and
	// the job runs again. (Bringing back only one of the three has the new
	// leader remove the two that stay dead and keep the one that came back:
	// see TestDeadServerCleanupKeepsLiveVoter.)
	restartAt := time.Now()
	for _, i := range victims {
		c.Launch(i)
	}
	for _, i := range victims {
		c.WaitReady(i)
	}
	newLeader := c.WaitLeader(15 * time.Second)
	t.Logf("%v restarted; all ready and leader %s agreed %s later", victimNames, c.Name(newLeader), time.Since(restartAt).Round(time.Millisecond))
	var wholeAt time.Time
	eventually(t, 20*time.Second, func() bool {
		checkVoters()
		for i := range 5 {
			st, err := c.Status(i)
			if err != nil || !st.Ready || !slices.Equal(st.Voters(), c.Names()) || len(st.Servers) != 5 {
				return false
			}
		}
		wholeAt = time.Now()
		return true
	}, "the configuration never became the five voters %v again", c.Names())
	t.Logf("five voters again %s after the restart; configurations never below %d voters", wholeAt.Sub(restartAt).Round(time.Millisecond), minSeen)

	runs := c.WaitRuns(30*time.Second, 10, func(r Run) bool { return r.StartTime().After(wholeAt) }, "after the restart")
	checkRuns(t, runs)
	// Nothing ran while there was no quorum.
	for _, r := range runs {
		if r.StartTime().After(killAt.Add(time.Second)) && r.StartTime().Before(restartAt) {
			t.Errorf("a run started while only two of five voters were up: %v", r)
		}
	}
	t.Logf("runs per node: %v", perNode(runs))
}

// TestPausedNodeNotRemoved freezes a follower with SIGSTOP, with a
// -dead-server-timeout of 10 s, twice: first for 1.5 s, which only fails
// gossip probes, then until the leader's gossip marks it failed plus 2 s,
// still well within the timeout. After each SIGCONT it is still in the
// configuration (it never left it) and runs jobs again.
func TestPausedNodeNotRemoved(t *testing.T) {
	const timeout = 10 * time.Second
	c := startCluster(t, 3, clusterOpts{Jobs: "a:200ms", DeadServerTimeout: timeout})
	c.WaitRuns(30*time.Second, 5, nil, "before the pause")
	leader := c.WaitLeader(10 * time.Second)
	victim := (leader + 1) % 3
	name := c.Name(victim)

	// stillIn fails the test if any live node's configuration lacks the
	// victim, and returns the leader's gossip record of it.
	stillIn := func() (memberStatus, bool) {
		var rec memberStatus
		var ok bool
		for _, i := range c.Live() {
			st, err := c.Status(i)
			if err != nil || !st.Ready {
				continue
			}
			if _, in := st.Server(name); !in {
				t.Fatalf("%s's configuration lost the paused node %s: %+v", st.Name, name, st.Servers)
			}
			if i == leader {
				rec, ok = st.Member(name)
			}
		}
		return rec, ok
	}

	for _, phase := range []struct {
		name string
		// hold says whether the pause may end, given the leader's gossip
		// record of the victim and how long it has been paused.
		hold func(m memberStatus, paused time.Duration) bool
	}{
		{"1.5s pause", func(_ memberStatus, paused time.Duration) bool { return paused < 1500*time.Millisecond }},
		{"pause until failed + 2s", func(m memberStatus, paused time.Duration) bool {
			if paused > 20*time.Second {
				t.Fatalf("the leader's gossip never marked the paused %s failed (last %+v)", name, m)
			}
			return m.Status != "failed" || time.Since(time.Unix(0, m.Since)) < 2*time.Second
		}},
	} {
		pauseAt := time.Now()
		c.Pause(victim)
		statuses := map[string]bool{}
		for {
			m, ok := stillIn()
			if ok {
				statuses[m.Status] = true
			}
			if !phase.hold(m, time.Since(pauseAt)) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		resumeAt := time.Now()
		c.Resume(victim)
		t.Logf("%s: %s paused for %s; the leader's gossip showed it as %v meanwhile", phase.name, name, resumeAt.Sub(pauseAt).Round(time.Millisecond), sortedKeys(statuses))

		// Back alive in gossip, still a voter, and running jobs again.
		eventually(t, 15*time.Second, func() bool {
			m, ok := stillIn()
			return ok && m.Status == "alive"
		}, "the leader's gossip never showed %s alive again", name)
		runs := c.WaitRuns(30*time.Second, 2, func(r Run) bool { return r.Node == name && r.StartTime().After(resumeAt) }, "by the resumed node")
		stillIn()
		checkRuns(t, runs)
		st := c.MustStatus(c.WaitLeader(10 * time.Second))
		if sv, in := st.Server(name); !in || !sv.Voter {
			t.Errorf("after %s, %s is not a voter in the leader's configuration: %+v", phase.name, name, st.Servers)
		}
	}
	for i := range 3 {
		for _, log := range c.Logs(i) {
			if strings.Contains(log, "removed dead server") {
				t.Errorf("%s removed a dead server:\n%s", c.Name(i), grepLines(log, "removed dead server"))
			}
		}
	}
	t.Logf("runs per node: %v", perNode(c.ReadRuns()))
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
