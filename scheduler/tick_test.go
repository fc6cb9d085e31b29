package scheduler

import (
	"math/rand/v2"
	"testing"
	"time"
)

var tickIntervals = []time.Duration{
	time.Millisecond, 100 * time.Millisecond, time.Second, 7 * time.Second, time.Hour,
}

func TestTickAt(t *testing.T) {
	tests := []struct {
		interval time.Duration
		k        int64
		want     time.Time
	}{
		{time.Millisecond, 0, time.Unix(0, 0)},
		{time.Millisecond, 1, time.Unix(0, 1_000_000)},
		{time.Millisecond, -1, time.Unix(0, -1_000_000)},
		{100 * time.Millisecond, 3, time.Unix(0, 300_000_000)},
		{100 * time.Millisecond, -3, time.Unix(0, -300_000_000)},
		{time.Second, 1_700_000_000, time.Unix(1_700_000_000, 0)},
		{time.Second, -5, time.Unix(-5, 0)},
		{7 * time.Second, 5, time.Unix(35, 0)},
		{7 * time.Second, -2, time.Unix(-14, 0)},
		{time.Hour, 473352, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)},
		{time.Hour, -2, time.Unix(-7200, 0)},
	}
	for _, tt := range tests {
		if got := TickAt(tt.interval, tt.k); !got.Equal(tt.want) {
			t.Errorf("TickAt(%s, %d) = %s, want %s", tt.interval, tt.k, got.UTC(), tt.want.UTC())
		}
	}
}

func TestTickIndexAndNextTick(t *testing.T) {
	const (
		ms = int64(time.Millisecond)
		s  = int64(time.Second)
	)
	tests := []struct {
		interval time.Duration
		ns       int64 // t as Unix nanoseconds
		want     int64 // TickIndex
	}{
		// At and around the epoch.
		{time.Second, 0, 0},
		{time.Second, 1, 0},
		{time.Second, s - 1, 0},
		{time.Second, s, 1},
		{time.Second, -1, -1},
		{time.Second, -s + 1, -1},
		{time.Second, -s, -1},
		{time.Second, -s - 1, -2},
		// 1ms.
		{time.Millisecond, ms + ms/2, 1},
		{time.Millisecond, -ms / 2, -1},
		{time.Millisecond, -ms, -1},
		{time.Millisecond, -ms - 1, -2},
		// 100ms.
		{100 * time.Millisecond, 250 * ms, 2},
		{100 * time.Millisecond, 300 * ms, 3},
		{100 * time.Millisecond, -250 * ms, -3},
		{100 * time.Millisecond, -300 * ms, -3},
		// 7s: does not divide a minute, so no accidental alignment.
		{7 * time.Second, 14 * s, 2},
		{7 * time.Second, 14*s - 1, 1},
		{7 * time.Second, -7 * s, -1},
		{7 * time.Second, -7*s + 1, -1},
		{7 * time.Second, -7*s - 1, -2},
		{7 * time.Second, 1_700_000_000 * s, 242857142}, // 242857142×7 = 1699999994
		// 1h, a real date.
		{time.Hour, time.Date(2024, 1, 1, 0, 30, 0, 0, time.UTC).UnixNano(), 473352},
		{time.Hour, time.Date(2024, 1, 1, 1, 0, 0, 0, time.UTC).UnixNano(), 473353},
		{time.Hour, time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC).UnixNano(), -1},
	}
	for _, tt := range tests {
		tm := time.Unix(0, tt.ns)
		if got := TickIndex(tt.interval, tm); got != tt.want {
			t.Errorf("TickIndex(%s, %dns) = %d, want %d", tt.interval, tt.ns, got, tt.want)
		}
		if got := NextTick(tt.interval, tm); got != tt.want+1 {
			t.Errorf("NextTick(%s, %dns) = %d, want %d", tt.interval, tt.ns, got, tt.want+1)
		}
	}
}

// TestTickIndexBracketsTime checks, for many times on both sides of the
// epoch, TickAt(d, k) ≤ t < TickAt(d, k+1) with k = TickIndex(d, t), and that
// NextTick is strictly after t.
func TestTickIndexBracketsTime(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now().UnixNano()
	for _, d := range tickIntervals {
		var samples []int64
		for k := int64(-3); k <= 3; k++ {
			b := k * int64(d)
			samples = append(samples, b-1, b, b+1)
		}
		for range 2000 {
			samples = append(samples,
				now+rng.Int64N(int64(1000*d))-int64(500*d), // around today
				rng.Int64N(int64(20*d))-int64(10*d),        // around the epoch
				rng.Int64N(1<<62)-1<<61,                    // anywhere representable
			)
		}
		for _, ns := range samples {
			tm := time.Unix(0, ns)
			k := TickIndex(d, tm)
			lo, hi := TickAt(d, k), TickAt(d, k+1)
			if lo.After(tm) || !tm.Before(hi) {
				t.Fatalf("interval %s, t=%dns: k=%d gives [%d, %d), which does not contain t", d, ns, k, lo.UnixNano(), hi.UnixNano())
			}
			next := NextTick(d, tm)
			if !TickAt(d, next).After(tm) || TickAt(d, next-1).After(tm) {
				t.Fatalf("interval %s, t=%dns: NextTick=%d is not the first tick strictly after t", d, ns, next)
			}
			if TickAt(d, k).UnixNano()%int64(d) != 0 {
				t.Fatalf("interval %s: tick %d at %dns is not aligned", d, k, TickAt(d, k).UnixNano())
			}
		}
	}
}

// TestReplicasAgreeOnTicks models two replicas that started at different
// times and read their clocks at different moments: both name every instant
// by the same index, and the first tick either schedules is one the other
// schedules at the same instant.
func TestReplicasAgreeOnTicks(t *testing.T) {
	base := time.Date(2025, 6, 1, 12, 0, 0, 123_456_789, time.UTC)
	for _, d := range tickIntervals {
		for _, offset := range []time.Duration{0, 1, d / 3, d - 1, d, 3*d + d/2, 97 * time.Millisecond, 11 * time.Second} {
			startA, startB := base, base.Add(offset)
			kA, kB := NextTick(d, startA), NextTick(d, startB)
			if kB < kA {
				t.Fatalf("interval %s offset %s: later replica's first tick %d before earlier's %d", d, offset, kB, kA)
			}
			// Replica A walks its own schedule from its start; it reaches
			// B's first tick at the same instant B schedules it.
			atA := TickAt(d, kA).Add(time.Duration(kB-kA) * d)
			if !atA.Equal(TickAt(d, kB)) {
				t.Errorf("interval %s offset %s: A schedules tick %d at %s, B at %s", d, offset, kB, atA, TickAt(d, kB))
			}
			// A moment each replica observes, with B's reading of it taken
			// through a different Time value (different location).
			moment := startB.Add(d / 2)
			if a, b := TickIndex(d, moment), TickIndex(d, moment.In(time.FixedZone("X", 5*3600))); a != b {
				t.Errorf("interval %s: replicas disagree on the index of %s: %d vs %d", d, moment, a, b)
			}
		}
	}
}
