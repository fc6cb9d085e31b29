package integration

import (
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestContainerFaults runs three replicas of the example service as Docker
// containers and, one after the other on the same cluster, stops and kills
// the leader, scales to five and back, rolls every replica, re-creates one
// with a new IP, restarts them all from their volumes and cuts one off the
// network for 90 s. Across all of it no tick may run twice; each check
// logs its failover time. It needs a Docker engine (skipped with a message
// without one) and, for the partition, nsenter and iptables on the host.
func TestContainerFaults(t *testing.T) {
	c := newDockerCluster(t)
	three := c.names(3)
	begin := time.Now()
	// Started one by one: the first one's Join resolves only itself (the
	// other names do not exist yet); later ones find the earlier ones.
	for i := range 3 {
		c.run(i, 3, 10+i)
	}
	leader := c.waitHealthy(three, 60*time.Second)
	c.waitRunAfter(time.Now(), 10*time.Second, "")
	t.Logf("3 replicas up in %s, leader %s", time.Since(begin).Round(time.Millisecond), leader)

	// checkStep fails the test on any duplicate so far, naming the step.
	checkStep := func(step string) {
		t.Helper()
		runs := c.allRuns()
		if d := duplicates(runs); len(d) > 0 {
			t.Errorf("%s: %d ticks ran more than once: %v", step, len(d), d)
		}
		for _, v := range tokenViolations(runs) {
			t.Errorf("%s: fencing tokens out of order: %s", step, v)
		}
	}

	t.Run("stop leader", func(t *testing.T) {
		defer c.use(t)()
		leader := c.waitHealthy(three, 30*time.Second)
		t0 := time.Now()
		took := c.stop(leader)
		c.waitRunAfter(time.Now(), 5*time.Second, "")
		gap := longestGap(c.allRuns(), ctrJob, t0, time.Now())
		t.Logf("docker stop %s (leader) took %s; longest time without a %s run around it: %s",
			leader, took.Round(time.Millisecond), ctrJob, gap.Round(time.Millisecond))
		if gap > time.Second {
			t.Errorf("after docker stop of the leader, runs stopped for %s; want them to continue within 1s; runs around it:\n%s", gap, runsAround(c.allRuns(), t0.Add(-time.Second), time.Now()))
		}
		c.start(leader)
		c.waitHealthy(three, 60*time.Second)
		checkStep("stop leader")
	})

	t.Run("kill leader", func(t *testing.T) {
		defer c.use(t)()
		old := c.waitHealthy(three, 30*time.Second)
		rest := slices.DeleteFunc(slices.Clone(three), func(n string) bool { return n == old })
		t0 := time.Now()
		c.must("kill", old)
		var failover time.Duration
		eventually(t, 10*time.Second, func() bool {
			var seen string
			for _, n := range rest {
				st, err := c.status(n)
				if err != nil || st.Leader == "" || st.Leader == old || (seen != "" && st.Leader != seen) {
					return false
				}
				seen = st.Leader
			}
			failover = time.Since(t0)
			return true
		}, "no new leader among %v after docker kill %s", rest, old)
		c.waitRunAfter(time.Now(), 5*time.Second, "")
		gap := longestGap(c.allRuns(), ctrJob, t0, time.Now())
		t.Logf("docker kill %s (leader): new leader after %s; longest time without a %s run: %s",
			old, failover.Round(time.Millisecond), ctrJob, gap.Round(time.Millisecond))
		if failover > 2*time.Second {
			t.Errorf("new leader %s after docker kill of the leader; want within 2s", failover)
		}
		c.start(old)
		c.waitHealthy(three, 60*time.Second)
		checkStep("kill leader")
	})

	t.Run("scale 3 to 5 to 3", func(t *testing.T) {
		defer c.use(t)()
		c.waitHealthy(three, 30*time.Second)
		t0 := time.Now()
		c.run(3, 5, 13)
		c.run(4, 5, 14)
		five := c.names(5)
		c.waitHealthy(five, 90*time.Second)
		up := time.Since(t0)
		// The new replicas take their share of the ticks.
		c.waitRunAfter(t0, 30*time.Second, c.name(3))
		c.waitRunAfter(t0, 30*time.Second, c.name(4))
		t1 := time.Now()
		c.stop(c.name(3), c.name(4))
		c.remove(c.name(3), c.name(4))
		c.waitHealthy(three, 60*time.Second)
		c.waitRunAfter(time.Now(), 5*time.Second, "")
		gap := longestGap(c.allRuns(), ctrJob, t0, time.Now())
		t.Logf("scaled to 5 voters in %s (both new ones ran ticks), back to 3 in %s; longest time without a %s run: %s",
			up.Round(time.Millisecond), time.Since(t1).Round(time.Millisecond), ctrJob, gap.Round(time.Millisecond))
		if gap > time.Second {
			t.Errorf("runs stopped for %s while scaling; want at most 1s; runs around it:\n%s", gap, runsAround(c.allRuns(), t0, time.Now()))
		}
		checkStep("scale")
	})

	t.Run("rolling update stop-first", func(t *testing.T) {
		defer c.use(t)()
		for i, name := range three {
			c.waitHealthy(three, 30*time.Second)
			t0 := time.Now()
			c.stop(name)
			c.remove(name)
			c.run(i, 3, 10+i, "INTERLOCK_ROLLOUT=2")
			c.waitHealthy(three, 60*time.Second)
			back := time.Since(t0)
			c.waitRunAfter(time.Now(), 5*time.Second, "")
			gap := longestGap(c.allRuns(), ctrJob, t0, time.Now())
			t.Logf("replaced %s: a member and voter again after %s; longest time without a %s run: %s",
				name, back.Round(time.Millisecond), ctrJob, gap.Round(time.Millisecond))
			if gap > time.Second {
				t.Errorf("runs stopped for %s while %s was replaced; want at most 1s; runs around it:\n%s", gap, name, runsAround(c.allRuns(), t0, time.Now()))
			}
		}
		checkStep("rolling update")
	})

	t.Run("re-created with a new IP", func(t *testing.T) {
		defer c.use(t)()
		leader := c.waitHealthy(three, 30*time.Second)
		i := slices.IndexFunc(three, func(n string) bool { return n != leader })
		name := three[i]
		t0 := time.Now()
		c.must("kill", name)
		c.remove(name)
		c.run(i, 3, 100+i)
		c.waitHealthy(three, 60*time.Second)
		newAddr := c.ip(name) + ":7947"
		eventually(t, 30*time.Second, func() bool {
			st, err := c.status(leader)
			if err != nil {
				return false
			}
			for _, s := range st.Servers {
				if s.Name == name {
					return s.Address == newAddr
				}
			}
			return false
		}, "the leader's Raft configuration does not list %s at its new address %s", name, newAddr)
		back := time.Since(t0)
		c.waitRunAfter(time.Now(), 30*time.Second, name)
		t.Logf("%s re-created at %s: a voter at its new address after %s, and runs jobs again", name, newAddr, back.Round(time.Millisecond))
		checkStep("new IP")
	})

	t.Run("full restart from volumes", func(t *testing.T) {
		defer c.use(t)()
		c.waitHealthy(three, 30*time.Second)
		before := c.allRuns()
		lastToken := uint64(0)
		for _, r := range before {
			lastToken = max(lastToken, r.Token)
		}
		t0 := time.Now()
		var wg sync.WaitGroup
		for _, n := range three {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := docker("stop", "-t", "30", n); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		stopped := time.Now()
		c.start(three...)
		c.waitHealthy(three, 90*time.Second)
		c.waitRunAfter(time.Now(), 10*time.Second, "")
		var first Run
		for _, r := range c.allRuns() {
			if r.Start > stopped.UnixNano() && (first.Start == 0 || r.Start < first.Start) {
				first = r
			}
		}
		t.Logf("all 3 stopped in %s; first run after the restart %s later (token %d, last before %d)",
			stopped.Sub(t0).Round(time.Millisecond), time.Unix(0, first.Start).Sub(stopped).Round(time.Millisecond), first.Token, lastToken)
		// A cluster that came back from its volumes continues the Raft
		// log; one bootstrapped afresh would hand out small tokens again.
		if first.Token <= lastToken {
			t.Errorf("first run after the restart has token %d, not above the last token before it (%d): the replicas did not restart from their volumes", first.Token, lastToken)
		}
		checkStep("full restart")
	})

	t.Run("partition one replica for 90s", func(t *testing.T) {
		defer c.use(t)()
		if _, err := exec.LookPath("iptables"); err != nil {
			t.Fatal(errNoIptables)
		}
		if _, err := exec.LookPath("nsenter"); err != nil {
			t.Fatal("nsenter is not installed on the host (package util-linux); the partition test needs it")
		}
		leader := c.waitHealthy(three, 30*time.Second)
		isolated := three[slices.IndexFunc(three, func(n string) bool { return n != leader })]
		majority := slices.DeleteFunc(slices.Clone(three), func(n string) bool { return n == isolated })
		t0 := time.Now()
		c.iptables(isolated, "-A", "INPUT", "-j", "DROP")
		c.iptables(isolated, "-A", "OUTPUT", "-j", "DROP")
		healed := false
		heal := func() {
			if !healed {
				healed = true
				c.iptables(isolated, "-D", "INPUT", "-j", "DROP")
				c.iptables(isolated, "-D", "OUTPUT", "-j", "DROP")
			}
		}
		defer heal()
		// The partition itself is the condition under test: it lasts 90 s.
		time.Sleep(90 * time.Second)
		t1 := time.Now()
		heal()

		runs := c.allRuns()
		// A tick at or just after the cut may have been claimed by the
		// isolated replica before it; from one interval on, none may run
		// there, and the majority must run every tick.
		from, to := t0.Add(ctrInterval), t1
		var there []Run
		for _, r := range runs {
			if r.Node == isolated && r.At >= from.UnixNano() && r.At <= to.UnixNano() {
				there = append(there, r)
			}
		}
		if len(there) > 0 {
			t.Errorf("the isolated replica %s ran %d ticks during the partition, e.g. %v", isolated, len(there), there[0])
		}
		missed := missedTicks(runs, ctrJob, tickOf(ctrInterval, from)+1, tickOf(ctrInterval, to)-1)
		gap := longestGap(runs, ctrJob, from, to)
		t.Logf("partition of %s: majority %v ran %d of %d %s ticks, longest time without a run %s",
			isolated, majority, tickOf(ctrInterval, to)-1-tickOf(ctrInterval, from)-len64(missed), tickOf(ctrInterval, to)-1-tickOf(ctrInterval, from),
			ctrJob, gap.Round(time.Millisecond))
		if len(missed) > 0 {
			t.Errorf("the majority missed %d ticks of %s during the partition: %v", len(missed), ctrJob, head(missed, 10))
		}

		// After the heal it must be a member and a Raft server again.
		var back time.Duration
		var problem string
		deadline := t1.Add(30 * time.Second)
		for {
			if _, problem = c.healthy(three); problem == "" {
				back = time.Since(t1)
				break
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if problem != "" {
			t.Errorf("30s after the partition healed, %s is not back as a member and Raft server: %s\n%s", isolated, problem, c.logTail(20))
		} else {
			t.Logf("after the heal, %s was an alive member and a voter again in %s", isolated, back.Round(time.Millisecond))
		}
		checkStep("partition")
	})

	checkRuns(t, c.allRuns())
	t.Logf("container fault tests: %d runs in %s, no duplicates", len(c.allRuns()), time.Since(begin).Round(time.Second))
}

// runsAround lists the fast job's runs that started in [from, to], one a
// line, for failure messages.
func runsAround(runs []Run, from, to time.Time) string {
	var b strings.Builder
	for _, r := range runsBetween(runs, ctrJob, from, to) {
		b.WriteString(r.String() + "\n")
	}
	return b.String()
}

func len64[T any](s []T) int64 { return int64(len(s)) }

func head(s []int64, n int) []int64 { return s[:min(len(s), n)] }
