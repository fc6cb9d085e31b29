package fsm_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/interlockraft/interlock/fsm"
)

// TestJobChurnStaysBounded churns 100,000 job names through the state
// machine, a hundred per entry with leader time advancing an hour per
// entry, as an application creating short-lived jobs would. Each name is
// registered, claimed and unregistered; a tenth are registered by a node
// that dies and is released later. The jobs map and the snapshot must stay
// bounded by the names of the last MaxStartDeadline, not grow with all
// 100,000.
func TestJobChurnStaysBounded(t *testing.T) {
	const (
		names    = 100_000
		perEntry = 100
		step     = int64(time.Hour)
	)
	// Names of the last MaxStartDeadline (plus the sweep's lag) may be kept,
	// and those of the three dead nodes not yet released.
	window := int64(fsm.MaxStartDeadline) / step
	maxJobs := int(window+2)*perEntry + 3*perEntry
	f := fsm.New(nil)
	index := uint64(0)
	now := t0
	maxSnap := 0
	for e := 0; e < names/perEntry; e++ {
		now += step
		batch := make([]fsm.Claim, 0, perEntry)
		jobs := make([]string, 0, perEntry)
		for i := 0; i < perEntry; i++ {
			job := fmt.Sprintf("job-%d", e*perEntry+i)
			jobs = append(jobs, job)
			batch = append(batch, fsm.Claim{Job: job, Tick: now / sec, At: now, Deadline: now + sec})
		}
		node := fmt.Sprintf("n%d", e%3)
		if e%10 == 0 {
			node = fmt.Sprintf("dead-%d", e)
		}
		index++
		apply(t, f, index, now, fsm.EncodeRegistration(fsm.Registration{Node: node, Add: jobs}))
		index++
		res := applyClaims(t, f, index, now, node, batch...)
		for i, o := range res.Outcomes {
			if o.Reason != fsm.ReasonGranted {
				t.Fatalf("entry %d, claim %d: %s, want granted", index, i, o.Reason)
			}
		}
		index++
		if node[0] == 'd' {
			// The dead node never unregisters; it is released once the
			// cluster removes it, some entries later.
			if e >= 30 {
				apply(t, f, index, now, fsm.EncodeNodeRelease(fmt.Sprintf("dead-%d", e-30)))
			}
		} else {
			apply(t, f, index, now, fsm.EncodeRegistration(fsm.Registration{Node: node, Remove: jobs}))
		}
		if e%50 == 0 {
			maxSnap = max(maxSnap, len(snapshotBytes(t, f)))
		}
		if n := len(f.Jobs()); n > maxJobs {
			t.Fatalf("after %d names the jobs map holds %d jobs, want at most %d", (e+1)*perEntry, n, maxJobs)
		}
	}
	// Each kept job costs well under 64 bytes in the snapshot.
	if limit := maxJobs * 64; maxSnap > limit {
		t.Errorf("snapshot grew to %d bytes, want at most %d", maxSnap, limit)
	}
	// The registrations of the dead nodes released so far are gone.
	for e := 0; e < names/perEntry-30; e += 10 {
		if got := f.Registered(fmt.Sprintf("job-%d", e*perEntry)); len(got) != 0 {
			t.Fatalf("job-%d still registered by %v after its node was released", e*perEntry, got)
		}
	}
	t.Logf("jobs kept: %d (bound %d), largest snapshot: %d bytes", len(f.Jobs()), maxJobs, maxSnap)
}

// TestForgottenJobStaysRefused checks the collector's safety argument: once
// a job's state is dropped, neither its last instant nor any earlier one
// can be granted again, not even to its holder as a repeat, and not even
// under a new leader whose clock lags; a later instant is granted with a
// higher token.
func TestForgottenJobStaysRefused(t *testing.T) {
	f := fsm.New(nil)
	applyClaims(t, f, 1, at(1), "n1", claim("a", 1))
	later := at(1) + int64(fsm.MaxStartDeadline) + int64(2*time.Minute)
	applyClaims(t, f, 2, later, "n9", claim("other", later/sec-t0/sec))
	if _, ok := f.Job("a"); ok {
		t.Fatalf("job a still held %s after its last instant with no registration", fsm.MaxStartDeadline)
	}
	// A leader whose clock lags by a day, well within the old claim's
	// window if the window were all that counted.
	lagging := later - int64(24*time.Hour)
	wide := fsm.Claim{Job: "a", Tick: 1, At: at(1), Deadline: at(1) + int64(fsm.MaxStartDeadline)}
	for i, n := range []string{"n1", "n2"} {
		if o := applyClaims(t, f, uint64(3+i), lagging, n, wide).Outcomes[0]; o.Granted() {
			t.Errorf("claim of the forgotten instant from %s: %+v, want refused", n, o)
		}
	}
	k := later / sec
	fresh := fsm.Claim{Job: "a", Tick: k, At: k * sec, Deadline: k*sec + sec}
	if o := applyClaims(t, f, 5, later, "n2", fresh).Outcomes[0]; o.Reason != fsm.ReasonGranted || o.Token != 5 {
		t.Errorf("claim of a new instant: %+v, want granted with token 5", o)
	}
}

// TestCollectorKeepsLiveJobs checks that a job is kept while a node
// registers it or its run lease is live, however old its last instant.
func TestCollectorKeepsLiveJobs(t *testing.T) {
	f := fsm.New(nil)
	register(t, f, 1, fsm.Registration{Node: "n1", Add: []string{"registered"}})
	long := fsm.Claim{Job: "running", Tick: 1, At: at(1), Deadline: at(1) + sec, Exclusive: true, LeaseTTL: int64(fsm.MaxStartDeadline)}
	applyClaims(t, f, 2, at(1), "n1", claim("registered", 1), long)
	// Renew the lease well past the window, as a long run does.
	now := at(1)
	for i := uint64(3); now < at(1)+int64(fsm.MaxStartDeadline)+int64(time.Hour); i++ {
		now += int64(time.Hour)
		if r := applyRuns(t, f, i, now, fsm.RunUpdate{Node: "n1", Renew: []fsm.RunRef{{Job: "running", Tick: 1}}}); !r.Renewed[0] {
			t.Fatalf("renewal at entry %d lost", i)
		}
	}
	for _, job := range []string{"registered", "running"} {
		if _, ok := f.Job(job); !ok {
			t.Errorf("job %q dropped while still live", job)
		}
	}
}

// TestCollectionIsDeterministic applies the same entries to two state
// machines, one restored from a snapshot midway, and checks that both drop
// the same jobs at the same entry.
func TestCollectionIsDeterministic(t *testing.T) {
	a, b := fsm.New(nil), fsm.New(nil)
	now := t0
	for i := uint64(1); i <= 200; i++ {
		now += int64(time.Hour) / 2
		c := fsm.Claim{Job: fmt.Sprintf("j%d", i), Tick: now / sec, At: now, Deadline: now + sec}
		applyClaims(t, a, i, now, "n1", c)
		if i == 77 {
			if err := restore(t, b, snapshotBytes(t, a)); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			continue
		}
		if i > 77 {
			applyClaims(t, b, i, now, "n1", c)
			if sa, sb := snapshotBytes(t, a), snapshotBytes(t, b); string(sa) != string(sb) {
				t.Fatalf("after entry %d the replicas differ: %d and %d jobs", i, len(a.Jobs()), len(b.Jobs()))
			}
		}
	}
	if n := len(a.Jobs()); n > 100 {
		t.Errorf("%d jobs kept, want the last two days' (about 96)", n)
	}
}
