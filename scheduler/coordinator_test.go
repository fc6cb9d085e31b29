package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/interlockraft/interlock/fsm"
)

// grantedOutcomes returns, per job/tick, the granting outcome the fake's FSM
// gave to the node's own claims.
func grantedOutcomes(calls []claimCall) map[string]fsm.Outcome {
	out := map[string]fsm.Outcome{}
	for _, c := range calls {
		if c.res == nil {
			continue
		}
		for i, o := range c.res.Outcomes {
			if o.Granted() {
				out[jobTick(c.claims[i].Job, c.claims[i].Tick)] = o
			}
		}
	}
	return out
}

func TestClaimGrantedRunsWithTokenAndNode(t *testing.T) {
	const interval = 20 * time.Millisecond
	coord := newFakeCoord("me", "me") // the only candidate: first on every tick
	var log runLog
	s := newScheduler(coord, nil)
	if err := s.Add(Job{Name: "j", Interval: interval, Func: log.record()}); err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, s)
	eventually(t, waitTimeout, func() bool { return log.len() >= 5 }, "fewer than 5 runs")
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	calls := coord.claimCalls()
	for _, c := range calls {
		for _, cl := range c.claims {
			if cl.Job != "j" || cl.At != TickAt(interval, cl.Tick).UnixNano() || cl.Deadline != cl.At+int64(interval) {
				t.Errorf("claim %+v: want job j, At = TickAt(tick), Deadline = At + StartDeadline", cl)
			}
		}
	}
	granted := grantedOutcomes(calls)
	runs := log.snapshot()
	seen := map[int64]bool{}
	for i, r := range runs {
		o, ok := granted[jobTick(r.Job, r.Tick)]
		if !ok {
			t.Errorf("run of tick %d that was never granted", r.Tick)
			continue
		}
		if r.Token != o.Token || r.Node != "me" {
			t.Errorf("run %+v; want token %d and node me", r, o.Token)
		}
		if !r.At.Equal(TickAt(interval, r.Tick)) {
			t.Errorf("run At %s, want %s", r.At, TickAt(interval, r.Tick))
		}
		if seen[r.Tick] {
			t.Errorf("tick %d ran twice", r.Tick)
		}
		seen[r.Tick] = true
		if i > 0 && r.Token <= runs[i-1].Token {
			t.Errorf("token %d after %d: fencing tokens must increase", r.Token, runs[i-1].Token)
		}
	}
	// Every grant ran: Run waits for the runs its granted claims started.
	if len(granted) != len(runs) {
		t.Errorf("%d grants but %d runs", len(granted), len(runs))
	}
}

func TestClaimTakenDoesNotRun(t *testing.T) {
	const interval = 20 * time.Millisecond
	coord := newFakeCoord("me", "me")
	coord.steal = func(c fsm.Claim) string {
		if c.Tick%2 == 0 {
			return "peer"
		}
		return ""
	}
	var log runLog
	s := newScheduler(coord, nil)
	// A long StartDeadline: on a stalled machine a claim arriving late
	// would be refused as expired rather than taken.
	if err := s.Add(Job{Name: "j", Interval: interval, StartDeadline: time.Second, Func: log.record()}); err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, s)
	eventually(t, waitTimeout, func() bool { return log.len() >= 4 }, "fewer than 4 runs")
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	var taken, grantedOdd int
	for _, c := range coord.claimCalls() {
		if c.res == nil {
			continue
		}
		for i, o := range c.res.Outcomes {
			tick := c.claims[i].Tick
			if tick%2 == 0 {
				if o.Reason != fsm.ReasonTaken || o.Holder != "peer" {
					t.Errorf("tick %d: outcome %+v, want taken by peer", tick, o)
				}
				taken++
			} else if o.Granted() {
				grantedOdd++
			}
		}
	}
	if taken == 0 {
		t.Fatal("no claim was refused; the test did not exercise refusal")
	}
	for _, r := range log.snapshot() {
		if r.Tick%2 == 0 {
			t.Errorf("ran tick %d, which was taken by peer", r.Tick)
		}
	}
	if log.len() != grantedOdd {
		t.Errorf("%d runs for %d granted ticks", log.len(), grantedOdd)
	}
	if st := s.Stats()["j"]; st.Runs != uint64(grantedOdd) || st.ClaimFailures != 0 {
		t.Errorf("Stats() = %+v; want %d runs, none failed", st, grantedOdd)
	}
}

// TestClaimsBatchedPerInstant adds 50 jobs every 50ms and 10 every 100ms:
// all claims for one instant go in one Claim call, never split, the 100ms
// jobs joining the 50ms jobs' call on the instants they share. (A loop that
// fell behind may send two instants in one call, which is fine.)
func TestClaimsBatchedPerInstant(t *testing.T) {
	const fast, slow = 50 * time.Millisecond, 100 * time.Millisecond
	coord := newFakeCoord("me", "me")
	s := newScheduler(coord, nil)
	var log runLog
	group := map[string]string{} // job → "fast" or "slow"
	for i := range 50 {
		name := fmt.Sprintf("fast-%02d", i)
		group[name] = "fast"
		// A generous StartDeadline keeps a slow machine from dropping a
		// few claims of an instant; AllowOverlap keeps a run still going
		// from skipping one.
		if err := s.Add(Job{Name: name, Interval: fast, Func: log.record(), Overlap: AllowOverlap, StartDeadline: time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		name := fmt.Sprintf("slow-%02d", i)
		group[name] = "slow"
		if err := s.Add(Job{Name: name, Interval: slow, Func: log.record(), Overlap: AllowOverlap, StartDeadline: time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	stop := startRun(t, s)
	eventually(t, waitTimeout, func() bool { return len(coord.claimCalls()) >= 5 }, "fewer than 5 Claim calls")
	// A grant that came back ahead of its instant (lead.go) runs at the
	// instant; one whose instant had not come when the Scheduler stopped
	// is given up, and is not counted below.
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	calls := coord.claimCalls()
	callOfInstant := map[int64]int{}
	perInstant := map[int64]map[string]int{} // instant → group → claims
	var claims int
	for n, c := range calls {
		jobs := map[string]bool{}
		for _, cl := range c.claims {
			if prev, ok := callOfInstant[cl.At]; ok && prev != n {
				t.Errorf("instant %d split over calls %d and %d", cl.At, prev, n)
			}
			callOfInstant[cl.At] = n
			if jobs[cl.Job] {
				t.Errorf("call %d claims job %s twice", n, cl.Job)
			}
			jobs[cl.Job] = true
			g := group[cl.Job]
			if g == "slow" && cl.At%int64(slow) != 0 {
				t.Errorf("100ms job %s claimed off its grid at %d", cl.Job, cl.At)
			}
			if perInstant[cl.At] == nil {
				perInstant[cl.At] = map[string]int{}
			}
			perInstant[cl.At][g]++
		}
		claims += len(c.claims)
	}
	shared := 0
	for at, g := range perInstant {
		if g["fast"] != 0 && g["fast"] != 50 || g["slow"] != 0 && g["slow"] != 10 {
			t.Errorf("instant %d: %d of 50 fast and %d of 10 slow jobs claimed; a group is claimed whole", at, g["fast"], g["slow"])
		}
		if g["fast"] == 50 && g["slow"] == 10 {
			shared++
		}
	}
	if shared == 0 {
		t.Error("no instant where the 50ms and 100ms jobs were claimed together")
	}
	if claims < 50*len(calls) {
		t.Errorf("%d claims in %d calls; want every call to carry at least the 50 jobs of an instant", claims, len(calls))
	}
	// Every grant of an instant before the latest one that ran ran too
	// (the stop may land while the latest instant's runs are being
	// started, and gives up the rest), and no run went without a grant.
	ran := map[string]bool{}
	var latest int64
	for _, r := range log.snapshot() {
		ran[jobTick(r.Job, r.Tick)] = true
		latest = max(latest, r.At.UnixNano())
	}
	granted := 0
	for _, c := range calls {
		for i, cl := range c.claims {
			if c.res == nil || !c.res.Outcomes[i].Granted() {
				continue
			}
			granted++
			if cl.At < latest && !ran[jobTick(cl.Job, cl.Tick)] {
				t.Errorf("job %s tick %d granted, before the last instant that ran, never ran", cl.Job, cl.Tick)
			}
		}
	}
	if got := log.len(); got > granted {
		t.Errorf("%d runs but only %d grants", got, granted)
	}
	t.Logf("%d claims in %d calls", claims, len(calls))
}

// TestHandleDecisions drives handleLocked directly, with no timers: what a
// node does with a due tick depends only on its rank, the fallback delay,
// the start deadline, LastGrant and whether the job is running.
func TestHandleDecisions(t *testing.T) {
	const (
		interval = time.Second
		fallback = 600 * time.Millisecond // second place waits 600ms; third, 1.2s ≥ deadline: never
	)
	cands := []string{"me", "p1", "p2"}
	coord := newFakeCoord("me", cands...)
	s := newScheduler(coord, nil)
	if err := s.Add(Job{Name: "j", Interval: interval, FallbackDelay: fallback, Func: noop}); err != nil {
		t.Fatal(err)
	}
	js := s.jobs["j"]
	base := TickIndex(interval, time.Now())
	tickAt := func(pos int) int64 { // a tick where "me" ranks pos
		for k := base; ; k++ {
			if position(rank("j", TickAt(interval, k).UnixNano(), cands), "me") == pos {
				return k
			}
		}
	}
	handle := func(ev event, now time.Time) (pendingClaim, bool, []event) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.queue.reset()
		c, ok := s.handleLocked(context.Background(), ev, now)
		q := s.queue.all()
		slices.SortFunc(q, func(a, b event) int { return a.at.Compare(b.at) })
		return c, ok, q
	}
	regular := func(k int64) event { return event{at: TickAt(interval, k), js: js, inst: TickAt(interval, k)} }
	nextOnly := func(t *testing.T, q []event, k int64) {
		t.Helper()
		if len(q) != 1 || !q[0].inst.Equal(TickAt(interval, k)) || q[0].fallback || !q[0].at.Equal(TickAt(interval, k)) {
			t.Errorf("queue %+v; want only the regular event of tick %d", q, k)
		}
	}
	// fallbackThenNext checks that q holds the fallback of the tick at at,
	// due fallback after it, then only the next tick's regular event.
	fallbackThenNext := func(t *testing.T, q []event, k int64, at time.Time) {
		t.Helper()
		if len(q) != 2 || !q[0].fallback || !q[0].inst.Equal(at) || !q[0].at.Equal(at.Add(fallback)) {
			t.Fatalf("queue %+v; want a fallback for tick %d at +%s, then the next tick", q, k, fallback)
		}
		nextOnly(t, q[1:], k+1)
	}

	t.Run("first claims at once", func(t *testing.T) {
		k := tickAt(0)
		at := TickAt(interval, k)
		c, ok, q := handle(regular(k), at)
		if !ok {
			t.Fatal("no claim")
		}
		want := fsm.Claim{Job: "j", Tick: k, At: at.UnixNano(), Deadline: at.Add(interval).UnixNano()}
		if c.claim != want || c.js != js {
			t.Errorf("claim %+v, want %+v", c.claim, want)
		}
		nextOnly(t, q, k+1)
	})
	t.Run("second waits the fallback delay", func(t *testing.T) {
		k := tickAt(1)
		at := TickAt(interval, k)
		_, ok, q := handle(regular(k), at)
		if ok {
			t.Fatal("claimed at once though ranked second")
		}
		fallbackThenNext(t, q, k, at)
	})
	t.Run("third is past the deadline and never claims", func(t *testing.T) {
		k := tickAt(2)
		_, ok, q := handle(regular(k), TickAt(interval, k))
		if ok {
			t.Fatal("claimed though ranked third")
		}
		nextOnly(t, q, k+1)
	})
	t.Run("fallback claims an unclaimed tick", func(t *testing.T) {
		k := tickAt(1)
		at := TickAt(interval, k).Add(fallback)
		c, ok, q := handle(event{at: at, js: js, inst: TickAt(interval, k), fallback: true}, at)
		if !ok || c.claim.Tick != k {
			t.Fatalf("fallback for an unclaimed tick: claim %+v, %v", c.claim, ok)
		}
		if len(q) != 0 {
			t.Errorf("a fallback event queued %+v; the regular event already queued the next tick", q)
		}
	})
	t.Run("fallback skips a taken tick", func(t *testing.T) {
		k := tickAt(1)
		at := TickAt(interval, k)
		coord.mu.Lock()
		// A wide window, so the FSM grants it whatever the tick's distance
		// from now.
		res := coord.applyLocked("p1", []fsm.Claim{{Job: "j", Tick: k, At: at.UnixNano(), Deadline: at.Add(time.Hour).UnixNano()}})
		coord.mu.Unlock()
		if !res.Outcomes[0].Granted() {
			t.Fatalf("setup: grant to p1 refused: %+v", res.Outcomes[0])
		}
		before := coord.lastGrantCalls()
		_, ok, q := handle(event{at: at.Add(fallback), js: js, inst: TickAt(interval, k), fallback: true}, at.Add(fallback))
		if ok || len(q) != 0 {
			t.Errorf("fallback for a tick p1 holds: claimed=%v, queue %+v", ok, q)
		}
		if coord.lastGrantCalls() == before {
			t.Error("fallback decided without LastGrant")
		}
	})
	// The loop fell behind by three and a half intervals: k, k+1 and k+2
	// are past their start deadline (one interval) and counted missed;
	// k+3 can still start, late, so it is the next one queued rather than
	// k+4, the first after now, which would lose k+3 silently.
	t.Run("past the deadline: missed, and the schedule jumps to the oldest tick still on time", func(t *testing.T) {
		k := tickAt(0)
		now := TickAt(interval, k).Add(3*interval + interval/2)
		_, ok, q := handle(regular(k), now)
		if ok {
			t.Fatal("claimed a tick past its start deadline")
		}
		nextOnly(t, q, k+3)
		if st := s.Stats()["j"]; st.Skipped != 0 {
			t.Errorf("a missed tick counted as skipped: %+v", st)
		}
	})
	t.Run("running job skips the tick", func(t *testing.T) {
		js.active.Store(1)
		defer js.active.Store(0)
		k := tickAt(0)
		before := js.skipped.Load()
		_, ok, q := handle(regular(k), TickAt(interval, k))
		if ok {
			t.Fatal("claimed while the job runs (SkipIfRunning)")
		}
		nextOnly(t, q, k+1)
		if js.skipped.Load() != before+1 {
			t.Error("Skipped not counted")
		}
	})
	// A node ranked second whose previous run still goes at the tick's
	// instant keeps its fallback: whether the run blocks the tick is
	// decided when the node would claim. Dropping the fallback lost a
	// tick after an election: the dead leader still ranked among the
	// candidates, the first live node's claim was refused as busy by this
	// node's run, which ended a few milliseconds after the instant, and
	// nobody claimed again (TestLeaderKill9WhileHoldingRunLease).
	t.Run("running at the instant, ranked second: decides at its fallback", func(t *testing.T) {
		// Not tickAt(1): an earlier case granted that tick to p1.
		k := tickAt(1) + 1
		for position(rank("j", TickAt(interval, k).UnixNano(), cands), "me") != 1 {
			k++
		}
		at := TickAt(interval, k)
		before := js.skipped.Load()
		js.active.Store(1)
		_, ok, q := handle(regular(k), at)
		if ok {
			t.Fatal("claimed at once though ranked second")
		}
		fallbackThenNext(t, q, k, at)
		if js.skipped.Load() != before {
			t.Error("Skipped counted at the instant for a node that claims only at its fallback")
		}
		fb := q[0]

		// Still running at the fallback: skipped, counted once.
		if _, ok, _ := handle(fb, fb.at); ok {
			t.Error("fallback claimed while the job runs")
		}
		if js.skipped.Load() != before+1 {
			t.Errorf("Skipped went from %d to %d; want one skip for the tick", before, js.skipped.Load())
		}

		// The run ended before the fallback, and the tick is unclaimed:
		// the fallback claims it.
		js.active.Store(0)
		c, ok, _ := handle(fb, fb.at)
		if !ok || c.claim.Tick != k || c.claim.At != at.UnixNano() {
			t.Fatalf("fallback after the run ended: claim %+v, %v; want a claim of tick %d", c.claim, ok, k)
		}
		if js.skipped.Load() != before+1 {
			t.Error("a claimed tick counted as skipped")
		}
	})
	// The cases below use ticks past every one granted above, as the
	// state machine grants a job's instants in order.
	rankedAfter := func(pos int, after int64) int64 {
		for k := after + 1; ; k++ {
			if position(rank("j", TickAt(interval, k).UnixNano(), cands), "me") == pos {
				return k
			}
		}
	}
	grant := func(t *testing.T, node string, k int64) {
		t.Helper()
		at := TickAt(interval, k)
		coord.mu.Lock()
		res := coord.applyLocked(node, []fsm.Claim{{Job: "j", Tick: k, At: at.UnixNano(), Deadline: at.Add(time.Hour).UnixNano()}})
		coord.mu.Unlock()
		if !res.Outcomes[0].Granted() {
			t.Fatalf("setup: grant of tick %d to %s refused: %+v", k, node, res.Outcomes[0])
		}
	}
	// A fallback handled after the tick's start deadline (this node's loop
	// fell behind) counts the tick missed unless the state machine shows
	// it granted: this node may have been the only one able to claim it,
	// when its own run lease, not yet released, refused the others as
	// busy. Dropping it lost ticks silently under a loaded CI run.
	t.Run("fallback past the deadline: missed unless granted", func(t *testing.T) {
		k := rankedAfter(1, base+100)
		at := TickAt(interval, k)
		late := at.Add(interval + time.Millisecond) // the default deadline is one interval
		before := js.missed.Load()
		if _, ok, q := handle(event{at: at.Add(fallback), js: js, inst: at, fallback: true}, late); ok || len(q) != 0 {
			t.Fatalf("late fallback of an ungranted tick: claimed=%v, queue %+v; want neither", ok, q)
		}
		if js.missed.Load() != before+1 {
			t.Errorf("Missed went from %d to %d; want the late fallback's tick counted", before, js.missed.Load())
		}
		k2 := rankedAfter(1, k)
		at2 := TickAt(interval, k2)
		grant(t, "p1", k2)
		before = js.missed.Load()
		if _, ok, _ := handle(event{at: at2.Add(fallback), js: js, inst: at2, fallback: true}, at2.Add(interval+time.Millisecond)); ok {
			t.Error("late fallback of a tick p1 holds claimed it")
		}
		if js.missed.Load() != before {
			t.Errorf("Missed went from %d to %d; a tick p1 holds was counted", before, js.missed.Load())
		}
	})
	// Ranked third, a node whose fallback would come after the deadline
	// never claims, unless it holds the job's latest grant: its run, or
	// its run lease, may hold the tick, every other node's claim is then
	// refused as busy, and only it can tell a skip from a miss. It judges
	// the tick in the last fallback slot before the deadline, here the
	// second's.
	t.Run("third with the latest grant judges in the last slot before the deadline", func(t *testing.T) {
		k := rankedAfter(2, base+300)
		at := TickAt(interval, k)
		grant(t, "me", k-1)
		_, ok, q := handle(regular(k), at)
		if ok {
			t.Fatal("claimed at once though ranked third")
		}
		fallbackThenNext(t, q, k, at)

		k2 := rankedAfter(2, k+1)
		grant(t, "p1", k2-1)
		_, ok, q = handle(regular(k2), TickAt(interval, k2))
		if ok {
			t.Fatal("claimed at once though ranked third")
		}
		nextOnly(t, q, k2+1)
	})
}

// TestFallbackOrder uses three candidates, a 400ms interval, a 150ms
// fallback delay and a 300ms start deadline: the node claims at the tick
// when ranked first, after the fallback delay when second (the tick being
// unclaimed), and never when third, since 2×150ms is not before the
// deadline. The fallback window ends before the next tick (once that is
// granted, the earlier one is taken), and its 150ms slack keeps a stalled
// machine from missing fallbacks.
func TestFallbackOrder(t *testing.T) {
	const (
		interval = 400 * time.Millisecond
		fallback = 150 * time.Millisecond
		deadline = 300 * time.Millisecond
	)
	cands := []string{"me", "peer-1", "peer-2"}
	coord := newFakeCoord("me", cands...)
	s := newScheduler(coord, nil)
	var jobs []string
	for i := range 30 {
		name := fmt.Sprintf("job-%02d", i)
		jobs = append(jobs, name)
		if err := s.Add(Job{Name: name, Interval: interval, FallbackDelay: fallback, StartDeadline: deadline, Func: noop}); err != nil {
			t.Fatal(err)
		}
	}
	pos := func(job string, tick int64) int {
		return position(rank(job, TickAt(interval, tick).UnixNano(), cands), "me")
	}
	// Wait for one complete tick: fallback claims for a tick, and
	// first-rank claims for a later one.
	complete := func() bool {
		var fallbackTick, firstTick int64 = 1 << 62, -1 << 62
		for _, c := range coord.claimCalls() {
			for _, cl := range c.claims {
				switch pos(cl.Job, cl.Tick) {
				case 0:
					firstTick = max(firstTick, cl.Tick)
				case 1:
					fallbackTick = min(fallbackTick, cl.Tick)
				}
			}
		}
		return firstTick > fallbackTick
	}
	stop := startRun(t, s)
	eventually(t, waitTimeout, complete, "no complete tick with fallback claims")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// A first-ranked claim may go out ahead of its tick by the lead the
	// scheduler gave that instant (lead.go): zero while the fake's claims
	// answer in well under a millisecond, a few milliseconds when a loaded
	// machine slows them.
	s.mu.Lock()
	leadOf := func(at int64) time.Duration { return s.capLead(s.jobs[jobs[0]].job, s.leadOf[at]) }
	leads := map[int64]time.Duration{}
	for _, c := range coord.claimCalls() {
		for _, cl := range c.claims {
			leads[cl.At] = leadOf(cl.At)
		}
	}
	s.mu.Unlock()

	claimed := map[int64]map[string]bool{}
	callOf := map[string]int{} // job/tick → index of the call that claimed it
	var lastFirstTick int64
	var firstLatency time.Duration
	for n, c := range coord.claimCalls() {
		for _, cl := range c.claims {
			key := jobTick(cl.Job, cl.Tick)
			if _, dup := callOf[key]; dup {
				t.Errorf("%s claimed twice", key)
			}
			callOf[key] = n
			if claimed[cl.Tick] == nil {
				claimed[cl.Tick] = map[string]bool{}
			}
			claimed[cl.Tick][cl.Job] = true
			at := time.Unix(0, cl.At)
			switch p := pos(cl.Job, cl.Tick); p {
			case 0:
				lastFirstTick = max(lastFirstTick, cl.Tick)
				// Not before the tick less its lead. How soon after
				// depends on the machine's load; that it does not wait for
				// the fallback delay is checked below by call order, and
				// exactly in TestHandleDecisions.
				if lead := leads[cl.At]; c.at.Before(at.Add(-lead - coalesce)) {
					t.Errorf("%s (ranked first) claimed %s before its tick; its lead was %s", key, at.Sub(c.at), lead)
				}
				firstLatency = max(firstLatency, c.at.Sub(at))
			case 1:
				if c.at.Before(at.Add(fallback - coalesce)) {
					t.Errorf("%s (ranked second) claimed %s after its tick; want at least the fallback delay %s", key, c.at.Sub(at), fallback)
				}
			default:
				t.Errorf("%s claimed though ranked %d: %s is past the start deadline", key, p, time.Duration(p)*fallback)
			}
		}
	}
	// Every tick before the last one with first-rank claims, whose
	// fallbacks were due before it: exactly the first- and second-ranked
	// jobs were claimed, first-ranked ones in an earlier call.
	checked := 0
	for tick, got := range claimed {
		if tick >= lastFirstTick {
			continue
		}
		checked++
		for _, job := range jobs {
			p := pos(job, tick)
			if want := p <= 1; got[job] != want {
				t.Errorf("tick %d job %s (ranked %d): claimed=%v, want %v", tick, job, p, got[job], want)
			}
		}
		for _, a := range jobs {
			for _, b := range jobs {
				ca, aok := callOf[jobTick(a, tick)]
				cb, bok := callOf[jobTick(b, tick)]
				if aok && bok && pos(a, tick) == 0 && pos(b, tick) == 1 && ca >= cb {
					t.Fatalf("tick %d: fallback claim of %s not after the first-rank claim of %s", tick, b, a)
				}
			}
		}
	}
	if checked == 0 {
		t.Error("no complete tick to check")
	}
	if coord.lastGrantCalls() == 0 {
		t.Error("fallback claims were sent without consulting LastGrant")
	}
	t.Logf("first-ranked claims sent at most %s after their tick", firstLatency)
}

// TestFallbackSkipsTakenTick has a peer that claims, on time, every tick it
// ranks first. The node, ranked second on those ticks, checks LastGrant
// after the fallback delay, finds them taken and sends no claim.
func TestFallbackSkipsTakenTick(t *testing.T) {
	const (
		interval = 100 * time.Millisecond
		fallback = 30 * time.Millisecond
	)
	cands := []string{"me", "peer"}
	coord := newFakeCoord("me", cands...)
	// The peer's latest grant at any moment: the latest tick up to now that
	// it ranks first. Merged with the node's own grants from the FSM.
	coord.lastGrant = func(job string, st fsm.JobState, ok bool) (fsm.JobState, bool) {
		k := TickIndex(interval, time.Now())
		for rank(job, TickAt(interval, k).UnixNano(), cands)[0] != "peer" {
			k--
		}
		if at := TickAt(interval, k).UnixNano(); !ok || at > st.LastAt {
			return fsm.JobState{LastAt: at, LastTick: k, Holder: "peer", Token: 1}, true
		}
		return st, ok
	}
	var log runLog
	s := newScheduler(coord, nil)
	const jobs = 20
	for i := range jobs {
		if err := s.Add(Job{Name: fmt.Sprintf("job-%02d", i), Interval: interval, FallbackDelay: fallback, Func: log.record()}); err != nil {
			t.Fatal(err)
		}
	}
	stop := startRun(t, s)
	// Each tick about half the jobs have the peer first and cause a
	// LastGrant check; wait for about three ticks of them.
	eventually(t, waitTimeout, func() bool { return coord.lastGrantCalls() >= 3*jobs/2 && log.len() >= jobs }, "too few fallback checks (%d) or runs (%d)", coord.lastGrantCalls(), log.len())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var firsts int
	for _, c := range coord.claimCalls() {
		for _, cl := range c.claims {
			if rank(cl.Job, cl.At, cands)[0] != "me" {
				t.Errorf("claimed %s, which the peer ranked first and held", jobTick(cl.Job, cl.Tick))
			} else {
				firsts++
			}
		}
	}
	for _, r := range log.snapshot() {
		if rank(r.Job, r.At.UnixNano(), cands)[0] != "me" {
			t.Errorf("ran %s, held by the peer", jobTick(r.Job, r.Tick))
		}
	}
	if firsts == 0 {
		t.Error("node never claimed the ticks it ranks first")
	}
}

// TestNotCandidateRanksLast: a node missing from the candidates (not yet
// registered) claims only as the last fallback.
func TestNotCandidateRanksLast(t *testing.T) {
	const (
		interval = 100 * time.Millisecond
		fallback = 20 * time.Millisecond
	)
	coord := newFakeCoord("me", "peer-1", "peer-2")
	s := newScheduler(coord, nil)
	if err := s.Add(Job{Name: "j", Interval: interval, FallbackDelay: fallback, Func: noop}); err != nil {
		t.Fatal(err)
	}
	startRun(t, s)
	eventually(t, waitTimeout, func() bool { return len(coord.claimCalls()) >= 2 }, "no claims")
	for _, c := range coord.claimCalls() {
		for _, cl := range c.claims {
			if at := time.Unix(0, cl.At); c.at.Before(at.Add(2*fallback - coalesce)) {
				t.Errorf("tick %d claimed %s after it; an unregistered node waits 2×%s", cl.Tick, c.at.Sub(at), fallback)
			}
		}
	}
}

// TestClaimErrorsCountAsClaimFailures: claims that get no answer, and whose
// grant never shows in the node's state machine either, count as claim
// failures (after
// the recovery window); nothing runs, and the schedule goes on.
func TestClaimErrorsCountAsClaimFailures(t *testing.T) {
	coord := newFakeCoord("me", "me")
	coord.claimErr = errors.New("no quorum")
	var log runLog
	s := newScheduler(coord, nil)
	for _, name := range []string{"a", "b"} {
		if err := s.Add(Job{Name: name, Interval: 15 * time.Millisecond, Func: log.record()}); err != nil {
			t.Fatal(err)
		}
	}
	stop := startRun(t, s)
	eventually(t, waitTimeout, func() bool {
		st := s.Stats()
		return st["a"].ClaimFailures >= 3 && st["b"].ClaimFailures >= 3
	}, "failed claims not counted")
	if log.len() != 0 {
		t.Errorf("%d runs without a grant", log.len())
	}
	if st := s.Stats()["a"]; st.Runs != 0 {
		t.Errorf("Stats() = %+v, want no runs", st)
	}
	// The cluster recovers; so does the schedule.
	coord.mu.Lock()
	coord.claimErr = nil
	coord.mu.Unlock()
	eventually(t, waitTimeout, func() bool { return s.Stats()["a"].Runs >= 2 && s.Stats()["b"].Runs >= 2 }, "no runs after claims succeed again")
	if err := stop(); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	for _, r := range log.snapshot() {
		if r.Token == 0 {
			t.Errorf("run %+v without a token", r)
		}
	}
}

// TestClaimLostReplyRecovered: the claim entry commits but its reply is
// lost. The node finds its grant in its own state machine and runs the
// tick with that grant's token; the claim does not count as failed.
func TestClaimLostReplyRecovered(t *testing.T) {
	coord := newFakeCoord("me", "me")
	coord.loseReply = true
	var log runLog
	s := newScheduler(coord, nil)
	if err := s.Add(Job{Name: "j", Interval: 20 * time.Millisecond, Func: log.record()}); err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, s)
	eventually(t, waitTimeout, func() bool { return log.len() >= 3 }, "no runs recovered from lost replies")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	tokens := map[int64]uint64{}
	for _, c := range coord.claimCalls() {
		if c.res == nil {
			continue
		}
		for i, o := range c.res.Outcomes {
			if o.Granted() {
				tokens[c.claims[i].Tick] = o.Token
			}
		}
	}
	seen := map[int64]bool{}
	for _, r := range log.snapshot() {
		if seen[r.Tick] {
			t.Errorf("tick %d ran twice", r.Tick)
		}
		seen[r.Tick] = true
		if tok, ok := tokens[r.Tick]; !ok || r.Token != tok || r.Node != "me" {
			t.Errorf("run %+v; want node me and the committed grant's token %d", r, tok)
		}
	}
	if st := s.Stats()["j"]; st.ClaimFailures != 0 {
		t.Errorf("Stats() = %+v; a committed claim is not a failure", st)
	}
}

// TestRepeatGrantRunsWithEarlierToken: the claim was already committed for
// this node (a retry whose first reply was lost), so the FSM answers
// ReasonRepeat with the earlier token; the node runs the tick once, with
// that token.
func TestRepeatGrantRunsWithEarlierToken(t *testing.T) {
	coord := newFakeCoord("me", "me")
	coord.steal = func(fsm.Claim) string { return "me" }
	var log runLog
	s := newScheduler(coord, nil)
	if err := s.Add(Job{Name: "j", Interval: 15 * time.Millisecond, Func: log.record()}); err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, s)
	eventually(t, waitTimeout, func() bool { return log.len() >= 3 }, "no runs")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var repeats int
	for _, c := range coord.claimCalls() {
		if c.res == nil {
			continue
		}
		for _, o := range c.res.Outcomes {
			if o.Reason == fsm.ReasonRepeat {
				repeats++
			}
		}
	}
	if repeats == 0 {
		t.Fatal("the fake never answered ReasonRepeat")
	}
	seen := map[int64]bool{}
	for _, r := range log.snapshot() {
		if seen[r.Tick] {
			t.Errorf("tick %d ran twice", r.Tick)
		}
		seen[r.Tick] = true
		tok, ok := coord.stolenToken(r.Job, r.Tick)
		if !ok || r.Token != tok {
			t.Errorf("run of tick %d has token %d; want the earlier grant's token %d", r.Tick, r.Token, tok)
		}
	}
}

// TestSameGrantTwiceRunsOnce delivers one grant twice: the second answer
// is ReasonRepeat with the same token, and the tick runs only once.
func TestSameGrantTwiceRunsOnce(t *testing.T) {
	coord := newFakeCoord("me", "me")
	var log runLog
	s := newScheduler(coord, nil)
	if err := s.Add(Job{Name: "j", Interval: time.Hour, Func: log.record()}); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	js := s.jobs["j"]
	s.mu.Unlock()
	now := time.Now()
	tick := TickIndex(time.Hour, now)
	at := TickAt(time.Hour, tick)
	batch := []pendingClaim{{js: js, claim: fsm.Claim{Job: "j", Tick: tick, At: at.UnixNano(), Deadline: at.Add(time.Hour).UnixNano()}}}

	ctx := context.Background()
	s.claim(ctx, batch)
	s.claim(ctx, batch)
	s.runs.Wait()

	calls := coord.claimCalls()
	if len(calls) != 2 {
		t.Fatalf("%d Claim calls, want 2", len(calls))
	}
	first, second := calls[0].res.Outcomes[0], calls[1].res.Outcomes[0]
	if first.Reason != fsm.ReasonGranted || second.Reason != fsm.ReasonRepeat || first.Token != second.Token {
		t.Fatalf("outcomes %+v then %+v; want granted then repeat with the same token", first, second)
	}
	runs := log.snapshot()
	if len(runs) != 1 {
		t.Fatalf("%d runs of one grant delivered twice, want 1", len(runs))
	}
	if runs[0].Token != first.Token || runs[0].Tick != tick {
		t.Errorf("run %+v, want tick %d token %d", runs[0], tick, first.Token)
	}
	if got := s.Stats()["j"].Runs; got != 1 {
		t.Errorf("Stats().Runs = %d, want 1", got)
	}
}

// TestStartRunsEachTickOnce: start runs each instant at most once, whatever
// order grants arrive in; an instant before the last one started still runs
// once, as the cluster grants it when its claim committed second.
func TestStartRunsEachTickOnce(t *testing.T) {
	s := newScheduler(nil, nil)
	var log runLog
	if err := s.Add(Job{Name: "j", Interval: time.Hour, Func: log.record()}); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	js := s.jobs["j"]
	s.mu.Unlock()
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 8 { // concurrent duplicates
		wg.Go(func() { s.start(ctx, js, Run{Job: "j", Tick: 5, At: TickAt(time.Hour, 5)}) })
	}
	wg.Wait()
	s.start(ctx, js, Run{Job: "j", Tick: 4, At: TickAt(time.Hour, 4)}) // older, granted late
	s.start(ctx, js, Run{Job: "j", Tick: 4, At: TickAt(time.Hour, 4)}) // and seen again
	s.start(ctx, js, Run{Job: "j", Tick: 6, At: TickAt(time.Hour, 6)})
	s.start(ctx, js, Run{Job: "j", Tick: 5, At: TickAt(time.Hour, 5)})
	s.runs.Wait()
	var ticks []int64
	for _, r := range log.snapshot() {
		ticks = append(ticks, r.Tick)
	}
	slices.Sort(ticks)
	if !slices.Equal(ticks, []int64{4, 5, 6}) {
		t.Errorf("ran ticks %v, want [4 5 6]", ticks)
	}
}

func TestRegisterOnRunAndUnregisterAfter(t *testing.T) {
	coord := newFakeCoord("me", "me")
	s := newScheduler(coord, nil)
	names := []string{"a", "b", "c"}
	for _, n := range names {
		if err := s.Add(Job{Name: n, Interval: time.Hour, Func: noop}); err != nil {
			t.Fatal(err)
		}
	}
	if len(coord.registerCalls()) != 0 {
		t.Fatal("Register called before Run")
	}
	stop := startRun(t, s)
	eventually(t, waitTimeout, func() bool { return len(coord.registerCalls()) >= 1 }, "Register not called on Run")
	reg := coord.registerCalls()[0]
	if got := sorted(reg.add); !slices.Equal(got, names) || len(reg.remove) != 0 {
		t.Errorf("Register(add=%v, remove=%v) on Run; want add=%v", reg.add, reg.remove, names)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	calls := coord.registerCalls()
	if len(calls) != 2 {
		t.Fatalf("%d Register calls, want 2 (register, unregister)", len(calls))
	}
	unreg := calls[1]
	if got := sorted(unreg.remove); !slices.Equal(got, names) || len(unreg.add) != 0 {
		t.Errorf("Register(add=%v, remove=%v) after Run; want remove=%v", unreg.add, unreg.remove, names)
	}
	// The coordinator may keep the slices it was given.
	for i, c := range calls {
		if !slices.Equal(c.addArg, c.add) || !slices.Equal(c.removeArg, c.remove) {
			t.Errorf("Register call %d: arguments changed after the call: add %v → %v, remove %v → %v", i, c.add, c.addArg, c.remove, c.removeArg)
		}
	}
}

// TestUnregisterAfterRemoveDuringRun removes jobs while running and adds
// another: removed jobs are unregistered right away (so peers stop ranking
// this node first for them), the added one is registered right away, on
// the way out every job is unregistered, and the slice given to the first
// Register call is left alone.
func TestUnregisterAfterRemoveDuringRun(t *testing.T) {
	coord := newFakeCoord("me", "me")
	s := newScheduler(coord, nil)
	for _, n := range []string{"a", "b"} {
		if err := s.Add(Job{Name: n, Interval: time.Hour, Func: noop}); err != nil {
			t.Fatal(err)
		}
	}
	stop := startRun(t, s)
	eventually(t, waitTimeout, func() bool { return len(coord.registerCalls()) >= 1 }, "Register not called on Run")
	for _, name := range []string{"a", "b"} {
		if err := s.Remove(name); err != nil {
			t.Fatalf("Remove(%q) during Run: %v", name, err)
		}
	}
	if err := s.Add(Job{Name: "z", Interval: time.Hour, Func: noop}); err != nil {
		t.Fatal(err)
	}
	// Removals and the addition reach the cluster while Run goes on.
	eventually(t, waitTimeout, func() bool { return len(coord.registerCalls()) >= 4 }, "Remove/Add during Run not sent to the cluster")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	calls := coord.registerCalls()
	if !slices.Equal(calls[0].addArg, calls[0].add) {
		t.Errorf("slice given to Register was changed afterwards: %v became %v", calls[0].add, calls[0].addArg)
	}
	added, removed := map[string]bool{}, map[string]bool{}
	for _, c := range calls[1:] {
		for _, n := range c.add {
			added[n] = true
		}
		for _, n := range c.remove {
			removed[n] = true
		}
	}
	if !removed["a"] || !removed["b"] || !removed["z"] {
		t.Errorf("unregistered %v; a and b (removed during Run) and z (added during Run) must all end unregistered", removed)
	}
	if !added["z"] {
		t.Errorf("job z, added during Run, was never registered")
	}
	last := calls[len(calls)-1]
	if !slices.Contains(last.remove, "z") {
		t.Errorf("last Register call %+v does not unregister z on the way out", last)
	}
}

func TestRegisterRetries(t *testing.T) {
	coord := newFakeCoord("me", "me")
	coord.registerFailures = 2
	s := newScheduler(coord, nil)
	if err := s.Add(Job{Name: "a", Interval: time.Hour, Func: noop}); err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, s)
	eventually(t, waitTimeout, func() bool { return len(coord.registerCalls()) >= 3 }, "Register not retried after failing")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	calls := coord.registerCalls()
	if len(calls) != 4 {
		t.Fatalf("%d Register calls, want 2 failures, 1 success, 1 unregister", len(calls))
	}
	for i := range 3 {
		if !slices.Equal(calls[i].add, []string{"a"}) {
			t.Errorf("attempt %d registered %v, want [a]", i, calls[i].add)
		}
	}
	if !slices.Equal(calls[3].remove, []string{"a"}) {
		t.Errorf("unregistered %v, want [a]", calls[3].remove)
	}
}

// TestNewWithoutCluster: New without a cluster has no coordinator and no
// node name; with one, the node name is the coordinator's.
func TestNewWithoutCluster(t *testing.T) {
	s := New(Options{})
	if s.coord != nil || s.node != "" {
		t.Errorf("New without a cluster has coordinator %v, node %q", s.coord, s.node)
	}
	s2 := newScheduler(newFakeCoord("n1"), nil)
	if s2.node != "n1" {
		t.Errorf("node name %q, want the coordinator's n1", s2.node)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
