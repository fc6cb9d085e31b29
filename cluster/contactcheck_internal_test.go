package cluster

import (
	"testing"
	"time"
)

// TestContactCheckNext checks when a follower asks raft to look at its
// leader contact: once per contact, HeartbeatTimeout plus the drawn extra
// after it, and never as a leader or before any contact.
func TestContactCheckNext(t *testing.T) {
	ms := time.Millisecond
	hb := 400 * ms
	t0 := time.Unix(1000, 0)
	type step struct {
		follower  bool
		last, now time.Time
		nudge     bool
		wait      time.Duration
	}
	tests := []struct {
		name  string
		extra time.Duration // what draw returns
		steps []step
	}{
		{"fresh contact waits for the deadline", 150 * ms, []step{
			{true, t0, t0.Add(100 * ms), false, 450 * ms},
		}},
		{"silent past the deadline nudges once", 150 * ms, []step{
			{true, t0, t0.Add(549 * ms), false, 1 * ms},
			{true, t0, t0.Add(550 * ms), true, hb},
			{true, t0, t0.Add(950 * ms), false, hb},
		}},
		{"a new contact moves the deadline and allows another nudge", 0, []step{
			{true, t0, t0.Add(hb), true, hb},
			{true, t0.Add(600 * ms), t0.Add(700 * ms), false, 300 * ms},
			{true, t0.Add(600 * ms), t0.Add(1000 * ms), true, hb},
		}},
		{"a leader or candidate is left to raft", 0, []step{
			{false, t0, t0.Add(5 * time.Second), false, hb},
		}},
		{"no contact yet is left to raft", 0, []step{
			{true, time.Time{}, t0, false, hb},
		}},
		{"a new follower counts from when it became one", 0, []step{
			{false, t0, t0.Add(2 * time.Second), false, hb},
			{true, t0, t0.Add(2100 * ms), false, hb},
			{true, t0, t0.Add(2499 * ms), false, 1 * ms},
			{true, t0, t0.Add(2500 * ms), true, hb},
		}},
		{"a contact after becoming a follower counts from the contact", 0, []step{
			{true, t0, t0.Add(100 * ms), false, 300 * ms},
			{true, t0.Add(200 * ms), t0.Add(300 * ms), false, 300 * ms},
			{true, t0.Add(200 * ms), t0.Add(600 * ms), true, hb},
		}},
		{"the extra is drawn below half a timeout", 199 * ms, []step{
			{true, t0, t0.Add(598 * ms), false, 1 * ms},
			{true, t0, t0.Add(599 * ms), true, hb},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newContactCheck()
			c.draw = func(d time.Duration) time.Duration {
				if d != hb/contactSpread {
					t.Fatalf("drew over %v, want %v", d, hb/contactSpread)
				}
				return tt.extra
			}
			// A follower since before every case's contacts; a case that
			// starts as a leader or candidate resets it.
			c.next(true, time.Time{}, t0.Add(-time.Hour), hb)
			for i, s := range tt.steps {
				nudge, wait := c.next(s.follower, s.last, s.now, hb)
				if nudge != s.nudge || wait != s.wait {
					t.Fatalf("step %d: next = (%v, %v), want (%v, %v)", i, nudge, wait, s.nudge, s.wait)
				}
			}
		})
	}
}

// TestContactCheckDrawsOncePerContact checks that the random extra is drawn
// for each new contact and not on each look: drawing on each look would
// make the deadline the earliest of many draws.
func TestContactCheckDrawsOncePerContact(t *testing.T) {
	hb := 400 * time.Millisecond
	draws := 0
	c := newContactCheck()
	c.draw = func(time.Duration) time.Duration { draws++; return 0 }
	t0 := time.Unix(1000, 0)
	for i := range 5 {
		c.next(true, t0, t0.Add(time.Duration(i)*time.Millisecond), hb)
	}
	c.next(true, t0.Add(time.Millisecond), t0.Add(2*time.Millisecond), hb)
	if draws != 2 {
		t.Fatalf("drew %d times for two contacts, want 2", draws)
	}
	var d time.Duration
	for range 1000 {
		if d = newContactCheck().draw(hb / contactSpread); d < 0 || d >= hb/contactSpread {
			t.Fatalf("draw(%v) = %v, want in [0, %v)", hb/contactSpread, d, hb/contactSpread)
		}
	}
}
