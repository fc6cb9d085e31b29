package scheduler

import "time"

// TickAt returns the scheduled instant of tick k for an interval: k×interval
// after the Unix epoch.
func TickAt(interval time.Duration, k int64) time.Time {
	return time.Unix(0, k*int64(interval))
}

// TickIndex returns the index of the latest tick at or before t, so
// TickAt(interval, TickIndex(interval, t)) ≤ t < TickAt(interval, k+1).
func TickIndex(interval time.Duration, t time.Time) int64 {
	ns := t.UnixNano()
	k := ns / int64(interval)
	if ns < 0 && ns%int64(interval) != 0 {
		k-- // floor, not truncation, before the epoch
	}
	return k
}

// NextTick returns the index of the first tick strictly after t.
func NextTick(interval time.Duration, t time.Time) int64 {
	return TickIndex(interval, t) + 1
}
