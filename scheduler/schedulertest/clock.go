package schedulertest

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Clock is a fake clock for scheduler.Options.Clock: its time moves only
// when Advance is called, which runs the functions of the timers that fall
// due, in order of their due time. A schedule of days, or a daylight saving
// transition, then plays out in milliseconds. It is safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	// armed is signalled whenever a timer is set.
	armed chan struct{}
}

type fakeTimer struct {
	at time.Time
	f  func()
}

// NewClock returns a fake clock that reads t0.
func NewClock(t0 time.Time) *Clock {
	return &Clock{now: t0, armed: make(chan struct{}, 1)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc calls f in its own goroutine once the clock has been advanced
// by d, unless stop is called first.
func (c *Clock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	c.mu.Lock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	select {
	case c.armed <- struct{}{}:
	default:
	}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		i := slices.Index(c.timers, t)
		if i < 0 {
			return false
		}
		c.timers = slices.Delete(c.timers, i, i+1)
		return true
	}
}

// Advance moves the clock forward by d, firing the timers that fall due on
// the way at their due times.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	c.advanceTo(end)
}

// Jump moves the clock forward by d at once, as a process that was paused
// sees it, and then fires every timer that fell due, all at the new time.
// Advance instead fires each timer at its own due time, as if time had
// passed smoothly.
func (c *Clock) Jump(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	end := c.now
	c.mu.Unlock()
	c.advanceTo(end)
}

func (c *Clock) advanceTo(end time.Time) {
	for {
		c.mu.Lock()
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.at.After(end) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			if end.After(c.now) {
				c.now = end
			}
			c.mu.Unlock()
			return
		}
		c.timers = slices.DeleteFunc(c.timers, func(t *fakeTimer) bool { return t == next })
		if next.at.After(c.now) {
			c.now = next.at
		}
		c.mu.Unlock()
		go next.f()
	}
}

// Next returns the due time of the earliest pending timer, and false if
// none is pending.
func (c *Clock) Next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var at time.Time
	for _, t := range c.timers {
		if at.IsZero() || t.at.Before(at) {
			at = t.at
		}
	}
	return at, !at.IsZero()
}

// AdvanceToNext waits until a timer is pending (or ctx ends), then moves the
// clock to the earliest pending timer's due time and fires it. It returns
// the new time. A test steps a Scheduler through its schedule with it: the
// Scheduler sets a timer for its next due event each time it goes idle.
func (c *Clock) AdvanceToNext(ctx context.Context) (time.Time, error) {
	at, err := c.WaitTimer(ctx)
	if err != nil {
		return c.Now(), err
	}
	c.advanceTo(at)
	return at, nil
}

// WaitTimer waits until a timer is pending, or ctx ends, and returns the
// earliest pending timer's due time. It moves nothing.
func (c *Clock) WaitTimer(ctx context.Context) (time.Time, error) {
	for {
		if at, ok := c.Next(); ok {
			return at, nil
		}
		select {
		case <-c.armed:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}
