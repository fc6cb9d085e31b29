package scheduler

import (
	"fmt"
	"time"
)

// Schedule names the instants at which a job runs. Every replica that adds
// a job must give it the same Schedule: a tick is named by its scheduled
// instant, so replicas agree on which tick is which only if they compute
// the same instants.
//
// Next is called from the Scheduler's goroutine and must be safe to call
// concurrently (the schedules of this package are immutable values).
type Schedule interface {
	// Next returns the first instant strictly after after, or the zero
	// time if the schedule has no more instants.
	Next(after time.Time) time.Time
}

// EverySchedule is a fixed interval aligned on the Unix epoch, with an
// optional offset: its instants are epoch + offset + k×interval. Because
// the instants depend on nothing but the interval and the offset, every
// replica computes the same ones, whenever it started. Build one with
// Every. It is an immutable value, safe for concurrent use.
type EverySchedule struct {
	d, off time.Duration
}

// Every returns the schedule of every d, aligned on the Unix epoch: with d
// of 24h, 00:00 UTC every day. Job.Interval is a shorthand for Every. A d
// that is not positive makes Add return an error naming Job.Schedule.
func Every(d time.Duration) EverySchedule { return EverySchedule{d: d} }

// Offset returns the schedule moved later by o: Every(24*time.Hour).
// Offset(3*time.Hour) runs at 03:00 UTC every day. o must satisfy
// 0 ≤ o < the interval, or Add returns an error naming Job.Schedule.
func (e EverySchedule) Offset(o time.Duration) EverySchedule {
	e.off = o
	return e
}

// Next returns the first instant epoch + offset + k×interval strictly after
// after, or the zero time if the schedule is invalid.
func (e EverySchedule) Next(after time.Time) time.Time {
	if e.validate() != nil {
		return time.Time{}
	}
	return e.at(e.index(after) + 1)
}

// index returns k of the latest instant at or before t.
func (e EverySchedule) index(t time.Time) int64 {
	return TickIndex(e.d, t.Add(-e.off))
}

// at returns instant k.
func (e EverySchedule) at(k int64) time.Time {
	return TickAt(e.d, k).Add(e.off)
}

// count returns how many instants lie in (after, upto].
func (e EverySchedule) count(after, upto time.Time) uint64 {
	if !upto.After(after) {
		return 0
	}
	return uint64(e.index(upto) - e.index(after))
}

func (e EverySchedule) validate() error {
	switch {
	case e.d <= 0:
		return fmt.Errorf("Every(%s): the interval must be greater than zero, such as Every(time.Minute)", e.d)
	case e.off < 0 || e.off >= e.d:
		return fmt.Errorf("Every(%s).Offset(%s): the offset must be at least 0 and less than the interval", e.d, e.off)
	}
	return nil
}

// String describes the schedule, as in logs.
func (e EverySchedule) String() string {
	if e.off == 0 {
		return fmt.Sprintf("every %s", e.d)
	}
	return fmt.Sprintf("every %s offset %s", e.d, e.off)
}

// atSchedule is At's schedule: one instant.
type atSchedule struct{ t time.Time }

// At returns a schedule with a single instant, t: the job runs once, on one
// node of the cluster, at t, and never again, even on replicas that add the
// job later or restart (the cluster remembers that the instant was granted,
// for MaxStartDeadline). A node that adds the job after t plus the job's
// StartDeadline does not run it, unless the job's Misfire policy is RunOnce
// and t is within its MisfireWindow.
func At(t time.Time) Schedule { return atSchedule{t: t} }

// Next returns t if after is before it, and the zero time otherwise.
func (a atSchedule) Next(after time.Time) time.Time {
	if after.Before(a.t) {
		return a.t
	}
	return time.Time{}
}

// String describes the schedule, as in logs.
func (a atSchedule) String() string { return "at " + a.t.Format(time.RFC3339Nano) }

// period estimates the time between a schedule's instants, for the defaults
// of StartDeadline, FallbackDelay and RunLease that scale with it: the gap
// between the first two instants after now, or, for a schedule with fewer
// than two more instants (At), one minute.
func period(s Schedule, now time.Time) time.Duration {
	if e, ok := s.(EverySchedule); ok {
		return e.d
	}
	a := s.Next(now)
	if a.IsZero() {
		return time.Minute
	}
	b := s.Next(a)
	if b.IsZero() || !b.After(a) {
		return time.Minute
	}
	return b.Sub(a)
}

// maxCount bounds how many instants instantsIn walks for a schedule that
// cannot count them arithmetically.
const maxCount = 10000

// instantsIn returns how many instants of s lie in (after, upto], at most
// maxCount for schedules other than EverySchedule, and the newest of them
// (zero if none).
func instantsIn(s Schedule, after, upto time.Time) (n uint64, newest time.Time) {
	if !upto.After(after) {
		return 0, time.Time{}
	}
	if e, ok := s.(EverySchedule); ok {
		n = e.count(after, upto)
		if n > 0 {
			newest = e.at(e.index(upto))
		}
		return n, newest
	}
	t := after
	for n < maxCount {
		next := s.Next(t)
		if next.IsZero() || next.After(upto) || !next.After(t) {
			return n, newest
		}
		n++
		newest, t = next, next
	}
	// Too many to walk: the newest is still wanted, so find it from a
	// point close to upto.
	for back := time.Second; back <= upto.Sub(after); back *= 2 {
		if next := s.Next(upto.Add(-back)); !next.IsZero() && !next.After(upto) {
			for {
				nn := s.Next(next)
				if nn.IsZero() || nn.After(upto) {
					return n, next
				}
				next = nn
			}
		}
	}
	return n, newest
}
