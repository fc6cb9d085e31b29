package integration

import (
	"fmt"
	"maps"
	"math/rand"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Environment variables read by TestChaos.
const (
	// chaosDurationEnv is how long the faults go on, as a Go duration;
	// default 2m. `make chaos DURATION=30m` sets it.
	chaosDurationEnv = "INTERLOCK_CHAOS_DURATION"
	// chaosSeedEnv replays a run's random choices: the seed every run
	// logs. Which node is hit also depends on which one leads at the time.
	chaosSeedEnv = "INTERLOCK_CHAOS_SEED"
	// chaosDeadServerTimeoutEnv passes -dead-server-timeout to the nodes
	// (default: the library's 30s, longer than any outage here, so no
	// server is ever removed for being dead).
	chaosDeadServerTimeoutEnv = "INTERLOCK_CHAOS_DEAD_SERVER_TIMEOUT"
)

// chaosJobs are the jobs every node runs during TestChaos.
var chaosJobs = map[string]time.Duration{"a": 100 * time.Millisecond, "b": 250 * time.Millisecond, "c": time.Second}

// TestChaos runs five nodes with jobs every 100 ms, 250 ms and 1 s and,
// every 1.5-4 s for INTERLOCK_CHAOS_DURATION (default 2m), injects one
// random fault from a seeded math/rand (INTERLOCK_CHAOS_SEED replays one):
// kill -9 a node and start it again 1-6 s later (30%), SIGSTOP it for
// 1-5 s (30%), kill -9 and restart it at once (30%), or stop it with
// SIGTERM and restart it (10%). At most two nodes are down (killed, paused
// or not yet ready) at any moment, so a quorum of the five voters can
// always return. About half the faults hit the current leader; the time
// from a leader kill or pause to a new leader agreed by every up node is
// the failover.
//
// It asserts that no failover takes longer than 15 s and every restarted
// node is ready within 60 s; afterwards every node is brought back and it
// asserts that no (job, tick) ran twice across all runlogs, that fencing
// tokens keep the order grants allow (tokenViolations), and that the
// cluster is healthy: one agreed leader, all five nodes ready, voters in
// every node's configuration and alive in every node's gossip, every job
// running again. It reports the ticks missed per job and the longest
// failover, and ends with one summary line, also printed to stdout:
//
//	chaos: duration=2m0s events=37 runs=2314 duplicates=0 missed=41 longest_failover=1.4s seed=123
func TestChaos(t *testing.T) {
	duration := 2 * time.Minute
	if v := os.Getenv(chaosDurationEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: want a positive Go duration such as 10m", chaosDurationEnv, v)
		}
		duration = d
	}
	seed := time.Now().UnixNano()
	if v := os.Getenv(chaosSeedEnv); v != "" {
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want an integer", chaosSeedEnv, v)
		}
		seed = s
	}
	var deadTimeout time.Duration
	if v := os.Getenv(chaosDeadServerTimeoutEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s=%q: want a Go duration", chaosDeadServerTimeoutEnv, v)
		}
		deadTimeout = d
	}
	t.Logf("chaos: seed=%d duration=%s (replay with %s=%d)", seed, duration, chaosSeedEnv, seed)
	rng := rand.New(rand.NewSource(seed))

	var jobs []string
	for name, iv := range chaosJobs {
		jobs = append(jobs, name+":"+iv.String())
	}
	slices.Sort(jobs)
	const n = 5
	c := startCluster(t, n, clusterOpts{Jobs: strings.Join(jobs, ","), DeadServerTimeout: deadTimeout})
	c.WaitRuns(30*time.Second, 10, nil, "before the chaos")

	ch := newChaos(t, c)
	ch.rng = rng
	ch.run(duration)
	end := time.Now()

	// Bring everything back and check the cluster is whole.
	ch.recoverAll()
	healthyAt := ch.waitHealthy()
	t.Logf("all nodes back; healthy %s after the chaos ended", healthyAt.Sub(end).Round(time.Millisecond))

	// Every job runs again after recovery.
	for name, iv := range chaosJobs {
		want := max(2, int(3*time.Second/iv))
		c.WaitRuns(30*time.Second, want, func(r Run) bool { return r.Job == name && r.StartTime().After(healthyAt) }, "of "+name+" after recovery")
	}
	runs := c.ReadRuns()
	checkRuns(t, runs)

	// Missed ticks per job, over the ticks from the start of the chaos
	// until the cluster was healthy again.
	missed := 0
	var perJob []string
	for _, name := range slices.Sorted(maps.Keys(chaosJobs)) {
		iv := chaosJobs[name]
		from, to := tickOf(iv, ch.begin)+1, tickOf(iv, healthyAt)
		mt := missedTicks(runs, name, from, to)
		missed += len(mt)
		perJob = append(perJob, fmt.Sprintf("%s(%s): %d of %d ticks missed", name, iv, len(mt), to-from+1))
		// The longest stretches of consecutive missed ticks, to line up
		// with the event log (seconds since the chaos began).
		var gaps []string
		for _, g := range longestGaps(mt, 3) {
			at := time.Unix(0, g[0]*int64(iv)).Sub(ch.begin).Seconds()
			gaps = append(gaps, fmt.Sprintf("%d ticks from %.1fs", g[1]-g[0]+1, at))
		}
		if len(gaps) > 0 {
			t.Logf("  %s: longest gaps: %s", name, strings.Join(gaps, ", "))
		}
	}
	t.Logf("missed ticks per job: %s", strings.Join(perJob, "; "))
	t.Logf("events: %s", ch.eventCounts())
	t.Logf("runs per node: %v", perNode(runs))
	if st := slices.Sorted(slices.Values(ch.starts)); len(st) > 0 {
		t.Logf("restarts: %d, launch to ready: min %s, median %s, max %s", len(st), st[0].Round(time.Millisecond), st[len(st)/2].Round(time.Millisecond), st[len(st)-1].Round(time.Millisecond))
	}

	fo := slices.Clone(ch.failovers)
	slices.Sort(fo)
	longest := time.Duration(0)
	if len(fo) > 0 {
		longest = fo[len(fo)-1]
		t.Logf("failovers after a leader kill or pause: %d, min %s, median %s, max %s",
			len(fo), fo[0].Round(time.Millisecond), fo[len(fo)/2].Round(time.Millisecond), longest.Round(time.Millisecond))
		for _, kind := range slices.Sorted(maps.Keys(ch.failoversBy)) {
			d := slices.Sorted(slices.Values(ch.failoversBy[kind]))
			t.Logf("  after %s of the leader: %d, min %s, median %s, max %s", kind, len(d), d[0].Round(time.Millisecond), d[len(d)/2].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
		}
	}
	summary := fmt.Sprintf("chaos: duration=%s events=%d runs=%d duplicates=%d missed=%d longest_failover=%s seed=%d",
		duration, ch.events, len(runs), len(duplicates(runs)), missed, longest.Round(100*time.Millisecond), seed)
	t.Log(summary)
	fmt.Println(summary)
}

type nodeState int

const (
	nodeUp       nodeState = iota
	nodeKilled             // dead until downUntil, then launched
	nodePaused             // SIGSTOPped until downUntil
	nodeStarting           // launched, not yet ready
)

// chaosReadyTimeout bounds how long a launched node may take to be ready.
const chaosReadyTimeout = 60 * time.Second

// chaos drives the faults of TestChaos from the test goroutine. Nothing in
// its loop blocks for long: restarted nodes are launched and polled until
// ready, so a slow start never stretches another node's outage.
type chaos struct {
	t     *testing.T
	c     *Cluster
	rng   *rand.Rand
	begin time.Time

	state     []nodeState
	downUntil []time.Time // nodeKilled, nodePaused: when the outage ends
	launched  []time.Time // nodeStarting: when it was launched
	why       []string    // nodeStarting: what started it, for the log

	events      int
	counts      map[string]int
	failovers   []time.Duration
	failoversBy map[string][]time.Duration
	starts      []time.Duration // launch to ready
}

func newChaos(t *testing.T, c *Cluster) *chaos {
	n := len(c.nodes)
	return &chaos{
		t: t, c: c, begin: time.Now(),
		state: make([]nodeState, n), downUntil: make([]time.Time, n), launched: make([]time.Time, n), why: make([]string, n),
		counts: map[string]int{}, failoversBy: map[string][]time.Duration{},
	}
}

func (ch *chaos) logf(format string, args ...any) {
	ch.t.Helper()
	ch.t.Logf("%7.1fs "+format, append([]any{time.Since(ch.begin).Seconds()}, args...)...)
}

func (ch *chaos) down() int {
	d := 0
	for _, s := range ch.state {
		if s != nodeUp {
			d++
		}
	}
	return d
}

// between returns a uniform random duration in [lo, hi).
func (ch *chaos) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(ch.rng.Int63n(int64(hi-lo)))
}

func (ch *chaos) run(duration time.Duration) {
	next := time.Now().Add(ch.between(1500*time.Millisecond, 4*time.Second))
	for time.Since(ch.begin) < duration {
		ch.step()
		if !time.Now().Before(next) {
			if ch.down() < 2 {
				ch.fault()
			}
			next = time.Now().Add(ch.between(1500*time.Millisecond, 4*time.Second))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// step ends the outages that are due and notices nodes that became ready.
func (ch *chaos) step() {
	c := ch.c
	now := time.Now()
	for i, s := range ch.state {
		switch {
		case s == nodePaused && !now.Before(ch.downUntil[i]):
			c.Resume(i)
			ch.state[i] = nodeUp
			ch.logf("SIGCONT %s", c.Name(i))
		case s == nodeKilled && !now.Before(ch.downUntil[i]):
			ch.launch(i, "restart after kill -9")
		case s == nodeStarting:
			ch.pollStarting(i)
		}
	}
}

func (ch *chaos) launch(i int, why string) {
	ch.c.Launch(i)
	ch.state[i] = nodeStarting
	ch.launched[i] = time.Now()
	ch.why[i] = why
}

// pollStarting marks node i up once it answers ready, and fails the test
// if its process exited or it took longer than chaosReadyTimeout.
func (ch *chaos) pollStarting(i int) {
	c := ch.c
	p := c.nodes[i]
	if !p.running() {
		ch.t.Fatalf("%s exited while starting (%s): %v; stderr:\n%s", p.name, ch.why[i], p.exitErr, tail(p.logs[len(p.logs)-1], 20))
	}
	if st, err := c.Status(i); err == nil && st.Ready {
		d := time.Since(ch.launched[i])
		ch.starts = append(ch.starts, d)
		ch.state[i] = nodeUp
		ch.logf("%s ready %s after launch (%s)", p.name, d.Round(time.Millisecond), ch.why[i])
		return
	}
	if time.Since(ch.launched[i]) > chaosReadyTimeout {
		ch.t.Fatalf("%s not ready %s after launch (%s)", p.name, chaosReadyTimeout, ch.why[i])
	}
}

// recoverAll ends every outage now and waits until every node is ready.
func (ch *chaos) recoverAll() {
	for i := range ch.state {
		ch.downUntil[i] = time.Time{}
	}
	eventually(ch.t, chaosReadyTimeout+5*time.Second, func() bool {
		ch.step()
		return ch.down() == 0
	}, "nodes still down after recovery: %v", lazy(func() string { return fmt.Sprint(ch.state) }))
}

// fault injects one random fault into a node that is up: about half the
// time the leader that all up nodes agree on, if there is one.
func (ch *chaos) fault() {
	c := ch.c
	var up []int
	for i, s := range ch.state {
		if s == nodeUp {
			up = append(up, i)
		}
	}
	leader, _ := ch.agreedLeader()
	// Draw every number whatever the state, so a replayed seed makes the
	// same draws.
	target := up[ch.rng.Intn(len(up))]
	if hitLeader := ch.rng.Intn(2) == 0; hitLeader && leader >= 0 {
		target = leader
	}
	isLeader := target == leader
	role := "follower"
	if isLeader {
		role = "leader"
	}
	name := c.Name(target)
	ch.events++
	switch k := ch.rng.Intn(100); {
	case k < 30: // kill -9, back in 1-6 s
		const kind = "kill"
		d := ch.between(time.Second, 6*time.Second)
		at := time.Now()
		c.Kill(target)
		ch.state[target] = nodeKilled
		ch.downUntil[target] = at.Add(d)
		ch.counts["kill"]++
		ch.logf("kill -9 %s (%s) for %s", name, role, d.Round(time.Millisecond))
		if isLeader {
			ch.measureFailover(at, target, kind)
		}
	case k < 60: // SIGSTOP for 1-5 s
		const kind = "pause"
		d := ch.between(time.Second, 5*time.Second)
		at := time.Now()
		c.Pause(target)
		ch.state[target] = nodePaused
		ch.downUntil[target] = at.Add(d)
		ch.counts["pause"]++
		ch.logf("SIGSTOP %s (%s) for %s", name, role, d.Round(time.Millisecond))
		if isLeader {
			ch.measureFailover(at, target, kind)
		}
	case k < 90: // kill -9 and restart at once
		const kind = "restart"
		at := time.Now()
		c.Kill(target)
		ch.launch(target, "kill -9 and restart")
		ch.counts["restart"]++
		ch.logf("kill -9 and restart %s (%s)", name, role)
		if isLeader {
			ch.measureFailover(at, target, kind)
		}
	default: // SIGTERM (graceful leave), then restart
		start := time.Now()
		if code := c.Stop(target); code != 0 {
			ch.t.Errorf("%s exited %d after SIGTERM, want 0", name, code)
		}
		ch.launch(target, "SIGTERM and restart")
		ch.counts["graceful restart"]++
		ch.logf("SIGTERM %s (%s): exited in %s; restarting", name, role, time.Since(start).Round(time.Millisecond))
	}
}

// agreedLeader returns the leader that every up node names, if they all
// answer and name the same up node, which says it leads; otherwise -1.
// Unlike Cluster.agreedLeader it ignores nodes still starting.
func (ch *chaos) agreedLeader() (int, string) {
	c := ch.c
	leader := ""
	var views []string
	ok := true
	self := map[string]bool{}
	for i, s := range ch.state {
		if s != nodeUp {
			continue
		}
		st, err := c.Status(i)
		if err != nil || !st.Ready {
			views = append(views, fmt.Sprintf("%s: %v", c.Name(i), err))
			ok = false
			continue
		}
		views = append(views, fmt.Sprintf("%s: leader %q", st.Name, st.Leader))
		if st.Leader == "" || (leader != "" && st.Leader != leader) {
			ok = false
		}
		leader = st.Leader
		self[st.Name] = st.IsLeader
	}
	idx := c.Index(leader)
	if !ok || idx < 0 || !self[leader] {
		return -1, strings.Join(views, "; ")
	}
	return idx, ""
}

// measureFailover waits until every up node agrees on a leader other than
// old — or old itself once it has been restarted and is ready again, since
// a leader restarted at once can win the next election with its own,
// newest, log — and records the time since at. A failover that takes over
// 15 s fails the test (the chaos goes on). Killed and paused nodes stay
// down meanwhile, which only delays their return: at least three of five
// nodes are up, so a quorum does not need them; nodes starting are polled,
// so one that becomes ready counts at once.
func (ch *chaos) measureFailover(at time.Time, old int, kind string) {
	ch.t.Helper()
	deadline := at.Add(15 * time.Second)
	for {
		for i, s := range ch.state {
			if s == nodeStarting {
				ch.pollStarting(i)
			}
		}
		idx, view := ch.agreedLeader()
		if idx >= 0 && (idx != old || ch.state[old] == nodeUp) {
			d := time.Since(at)
			ch.failovers = append(ch.failovers, d)
			ch.failoversBy[kind] = append(ch.failoversBy[kind], d)
			ch.logf("  leader %s agreed after %s", ch.c.Name(idx), d.Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			ch.t.Errorf("no leader agreed 15s after taking down leader %s (%s); last view: %s", ch.c.Name(old), kind, view)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitHealthy waits until all nodes agree on one leader, every node is a
// voter in every node's configuration and alive in every node's gossip,
// and returns when that was first seen.
func (ch *chaos) waitHealthy() time.Time {
	c := ch.c
	names := c.Names()
	var view string
	eventually(ch.t, 30*time.Second, func() bool {
		var views []string
		ok := true
		for i := range ch.state {
			st, err := c.Status(i)
			if err != nil || !st.Ready {
				views = append(views, fmt.Sprintf("%s: %v ready=%v", c.Name(i), err, st.Ready))
				ok = false
				continue
			}
			alive := 0
			for _, m := range st.Members {
				if m.Status == "alive" {
					alive++
				}
			}
			views = append(views, fmt.Sprintf("%s: leader %q, voters %v, servers %v, %d alive of %v", st.Name, st.Leader, st.Voters(), st.ServerNames(), alive, st.MemberNames()))
			if !slices.Equal(st.Voters(), names) || !slices.Equal(st.ServerNames(), names) || alive != len(names) || !slices.Equal(st.MemberNames(), names) {
				ok = false
			}
		}
		view = strings.Join(views, "; ")
		return ok && c.agreedLeader() >= 0
	}, "the cluster never became whole again: %s", lazy(func() string { return view }))
	return time.Now()
}

func (ch *chaos) eventCounts() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(ch.counts)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, ch.counts[k]))
	}
	return fmt.Sprintf("%d (%s)", ch.events, strings.Join(parts, ", "))
}

// longestGaps returns up to n stretches [first, last] of consecutive ticks
// in the sorted list missed, longest first.
func longestGaps(missed []int64, n int) [][2]int64 {
	var gaps [][2]int64
	for i := 0; i < len(missed); {
		j := i
		for j+1 < len(missed) && missed[j+1] == missed[j]+1 {
			j++
		}
		gaps = append(gaps, [2]int64{missed[i], missed[j]})
		i = j + 1
	}
	slices.SortStableFunc(gaps, func(a, b [2]int64) int { return int((b[1] - b[0]) - (a[1] - a[0])) })
	return gaps[:min(n, len(gaps))]
}
