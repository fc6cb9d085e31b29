package integration

import (
	"testing"
	"time"
)

// TestLeaderSIGSTOP freezes the leader with SIGSTOP for 5 s: the other two
// elect a new leader and keep running the job meanwhile, missing no tick
// once the new leader has committed its first entry; after SIGCONT the old
// leader is a follower, and no tick ever runs twice, in particular the
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

	// Once the others agree on a new leader, claims that were forwarded to
	// the stopped one (whose connections stay open, so nothing fails fast)
	// are abandoned and retried with the new leader, and a run lease the
	// stopped node held ends by its own expiry: no tick is missed from the
	// moment the new leader has committed its first entry (or the end of
	// such a lease) until the resume.
	gained := gainedLeadershipAt(t, c, newLeader, pauseAt)
	from := gained
	if leaseEnd := pauseAt.Add(runLease); leaseEnd.After(from) {
		from = leaseEnd
	}
	ran := map[int64]bool{}
	for _, r := range c.ReadRuns() {
		ran[r.At] = true
	}
	const interval = 200 * time.Millisecond
	var missed []int64
	for k := from.UnixNano()/int64(interval) + 1; time.Unix(0, (k+1)*int64(interval)).Before(resumeAt); k++ {
		if !ran[k*int64(interval)] {
			missed = append(missed, k)
		}
	}
	t.Logf("new leader committed its first entry %s after the SIGSTOP; ticks missed from %s after it to the resume: %d",
		gained.Sub(pauseAt).Round(time.Millisecond), from.Sub(pauseAt).Round(time.Millisecond), len(missed))
	if len(missed) > 0 {
		t.Errorf("%d ticks missed after the new leader committed its first entry (ticks %v): forwards to the stopped leader or its run lease held up claims", len(missed), missed)
	}

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

// TestLockDuringLeaderSIGSTOP sends a Lock, with no deadline of its own, to
// a follower right after the leader is frozen. The follower forwards it to
// the frozen leader over an open connection, where nothing fails fast. It
// must give that forward up as soon as it learns of the new leader and
// retry there, not wait out the ProposeTimeout (5 s): every node keeps one
// batch in flight, so a hung forward would also hold up its scheduler's
// claims.
func TestLockDuringLeaderSIGSTOP(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{Jobs: "a:200ms"})
	c.WaitRuns(30*time.Second, 5, nil, "before the pause")
	leader := c.WaitLeader(10 * time.Second)
	f := (leader + 1) % 3
	// Leaves the follower an open RPC connection to the leader.
	if _, err := c.LockUnlock(f, "warm-up", 10*time.Second); err != nil {
		t.Fatal(err)
	}

	pauseAt := time.Now()
	c.Pause(leader)
	token, err := c.LockUnlock(f, "during-pause", 15*time.Second)
	took := time.Since(pauseAt)
	c.Resume(leader)
	if err != nil {
		t.Fatalf("Lock+Unlock on %s with the leader stopped: %v", c.Name(f), err)
	}
	t.Logf("Lock+Unlock on %s took %s with the leader stopped (token %d)", c.Name(f), took.Round(time.Millisecond), token)
	// The followers stand for election after one to one and a half
	// HeartbeatTimeouts (0.4-0.6 s) of silence; 4 s leaves room for a
	// loaded machine and is still short of the 5 s a forward waits before
	// it times out.
	if took > 4*time.Second {
		t.Fatalf("Lock+Unlock on %s took %s with the leader stopped: the forward to the stopped leader was not abandoned when a new leader was elected", c.Name(f), took)
	}
	checkRuns(t, c.ReadRuns())
}
