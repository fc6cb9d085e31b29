package integration

import (
	"testing"
	"time"
)

// TestLeaderSIGSTOP freezes the leader with SIGSTOP for 5 s: the other two
// elect a new leader and keep running the job meanwhile; after SIGCONT the
// old leader is a follower, and no tick ever runs twice, in particular the
// frozen node never runs a tick that another node ran.
func TestLeaderSIGSTOP(t *testing.T) {
	const pause = 5 * time.Second
	c := startCluster(t, 3, clusterOpts{Jobs: "a:200ms"})
	c.WaitRuns(30*time.Second, 10, nil, "before the pause")

	leader := c.WaitLeader(10 * time.Second)
	old := c.Name(leader)
	pauseAt := time.Now()
	c.Pause(leader)

	// While it is stopped: a new leader among the other two...
	newLeader := c.WaitLeader(pause - 500*time.Millisecond)
	t.Logf("paused leader %s; %s leads after %s", old, c.Name(newLeader), time.Since(pauseAt).Round(time.Millisecond))
	if newLeader == leader {
		t.Fatalf("the paused node %s is still the agreed leader", old)
	}
	// ...and the job goes on.
	during := func(r Run) bool { return r.StartTime().After(pauseAt) }
	c.WaitRuns(pause-time.Since(pauseAt), 5, during, "while the leader was stopped")
	// The scenario is a 5 s stop: keep it stopped for the rest of it.
	time.Sleep(pause - time.Since(pauseAt))
	resumeAt := time.Now()
	c.Resume(leader)
	t.Logf("SIGCONT after %s", resumeAt.Sub(pauseAt).Round(time.Millisecond))

	runs := c.ReadRuns()
	duringPause := 0
	for _, r := range runs {
		if r.StartTime().After(pauseAt) && r.StartTime().Before(resumeAt) {
			duringPause++
			if r.Node == old {
				t.Errorf("the stopped node recorded a run while stopped: %v", r)
			}
		}
	}
	t.Logf("%d runs recorded during the %s stop", duringPause, pause)

	// After SIGCONT the old leader is a follower of the leader the others
	// elected, and all three agree.
	eventually(t, 15*time.Second, func() bool {
		idx := c.agreedLeader()
		if idx < 0 || idx == leader {
			return false
		}
		st, err := c.Status(leader)
		return err == nil && !st.IsLeader && st.Leader == c.Name(idx)
	}, "the resumed node %s did not become a follower of an agreed leader", old)

	// It rejoins the rotation, and the others keep going.
	runs = c.WaitRuns(30*time.Second, 2, func(r Run) bool { return r.Node == old && r.StartTime().After(resumeAt) }, "by the resumed node")
	checkRuns(t, runs)

	// The paused node never ran a tick that was run by another node (the
	// duplicate check covers this; this names the offending pairs).
	byTick := map[int64][]Run{}
	for _, r := range runs {
		byTick[r.Tick] = append(byTick[r.Tick], r)
	}
	for _, r := range runs {
		if r.Node != old {
			continue
		}
		for _, o := range byTick[r.Tick] {
			if o.Node != old {
				t.Errorf("the paused node ran tick %d, also run by %s: %v and %v", r.Tick, o.Node, r, o)
			}
		}
	}
	t.Logf("runs per node: %v", perNode(runs))
}
