package scheduler

import (
	"testing"
	"time"

	"github.com/interlockraft/interlock/fsm"
)

// TestScheduleChangeNeverCollides runs a job every 100ms, then restarts it
// with other schedules whose tick indexes overlap the first one's: every
// 150ms, every 50ms offset 10ms, and a cron spec. Ticks are named by
// instant, so no instant is granted twice, instants and tokens only grow,
// and the old grants never block the new schedule's later instants.
func TestScheduleChangeNeverCollides(t *testing.T) {
	coord := newFakeCoord("me", "me")
	cron, err := Cron("* * * * * *")
	if err != nil {
		t.Fatal(err)
	}
	phases := []Job{
		{Interval: 100 * time.Millisecond},
		{Schedule: Every(150 * time.Millisecond)},
		{Schedule: Every(50 * time.Millisecond).Offset(10 * time.Millisecond)},
		{Schedule: cron},
	}
	var all []Run
	for i, j := range phases {
		var log runLog
		j.Name, j.Func = "j", log.record()
		s := newScheduler(coord, nil)
		if err := s.Add(j); err != nil {
			t.Fatal(err)
		}
		stop := startRun(t, s)
		want := 3
		if j.Schedule == cron {
			want = 2
		}
		eventually(t, waitTimeout, func() bool { return log.len() >= want }, "phase %d: fewer than %d runs", i, want)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		runs := log.snapshot()
		for _, r := range runs {
			if j.Schedule != nil && !j.Schedule.Next(r.At.Add(-1)).Equal(r.At) {
				t.Errorf("phase %d ran %s, not an instant of its schedule", i, r.At)
			}
		}
		all = append(all, runs...)
	}
	seen := map[int64]bool{}
	for i, r := range all {
		if seen[r.At.UnixNano()] {
			t.Errorf("instant %s ran twice", r.At)
		}
		seen[r.At.UnixNano()] = true
		if i > 0 && (!r.At.After(all[i-1].At) || r.Token <= all[i-1].Token) {
			t.Errorf("run %d: %s token %d after %s token %d; want instants and tokens to grow", i, r.At, r.Token, all[i-1].At, all[i-1].Token)
		}
	}
	// The state machine refuses an instant that ran, whatever schedule
	// names it, to any node.
	st, _ := coord.LastGrant("j")
	coord.mu.Lock()
	for _, r := range all {
		res := coord.applyLocked("other", []fsm.Claim{{Job: "j", Tick: 1, At: r.At.UnixNano(), Deadline: st.LastAt + int64(time.Hour)}})
		if res.Outcomes[0].Granted() {
			t.Errorf("instant %s, which ran, was granted again: %+v", r.At, res.Outcomes[0])
		}
	}
	coord.mu.Unlock()
}
