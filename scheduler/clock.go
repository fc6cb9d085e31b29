package scheduler

import "time"

// Clock is the time source of a Scheduler: when ticks are due and when
// runs started. The default is the machine's clock; tests pass a fake one,
// such as schedulertest.NewClock, so that a schedule of days or a daylight
// saving transition plays out in milliseconds.
//
// The cluster does not read it: claims still carry deadlines that the
// leader checks against its own clock, so a fake clock suits a Scheduler
// without a Cluster or with a schedulertest.Cluster. Implementations must
// be safe for concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has elapsed, unless
	// stop is called first. stop reports whether it prevented the call.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// realClock is the machine's clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}
