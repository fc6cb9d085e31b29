package scheduler

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// cronParser accepts five fields (minute first) or six (seconds first),
// the CRON_TZ= and TZ= prefixes, and descriptors such as @daily.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// cronFields names the fields of a six-field spec, seconds first.
var cronFields = [6]string{"seconds", "minute", "hour", "day of month", "month", "day of week"}

// cronSchedule is a parsed cron spec. It is an immutable value, safe for
// concurrent use.
type cronSchedule struct {
	spec  string
	sched cron.Schedule
	// once is set when the spec names fixed hours: a wall-clock time that
	// a fall-back transition repeats is then run at its first occurrence
	// only.
	once bool
}

// Cron parses a cron spec:
//
//   - five fields (minute hour day-of-month month day-of-week), or six with
//     a leading seconds field: "*/10 * * * * *" is every ten seconds;
//   - an optional CRON_TZ=Area/City or TZ=Area/City prefix, in which the
//     fields are read (UTC without one, whatever the machine's zone, so
//     that every replica computes the same instants);
//   - or a descriptor: @yearly, @monthly, @weekly, @daily (@midnight),
//     @hourly, or @every <duration> such as "@every 90s".
//
// "@every d" is not relative to when the process started, as it is in
// robfig/cron, but aligned on the Unix epoch like Every(d), so that every
// replica names the same instants; d is rounded down to whole seconds, and
// must be at least one second.
//
// Daylight saving time, in a zone that has it: a wall-clock time that does
// not exist on the day clocks go forward (02:30 in Europe/Berlin on the
// last Sunday of March) is not run that day; a job of "30 2 * * *" runs
// at 02:30 the next day. A wall-clock time that repeats on the day clocks
// go back runs once, at its first occurrence, if the spec names its hours;
// with an hour field of * (such as "0 * * * *") it runs in each of the two
// hours, since each is a different hour of real time.
//
// A spec that cannot be parsed returns an error wrapping ErrInvalidCron
// that quotes the spec and names the wrong field.
func Cron(spec string) (Schedule, error) {
	parse := spec
	if stripZone(spec) == strings.TrimSpace(spec) {
		// robfig/cron reads a spec without a zone in time.Local, which
		// differs between replicas.
		parse = "CRON_TZ=UTC " + spec
	}
	sched, err := cronParser.Parse(parse)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %s: %w", ErrInvalidCron, spec, cronWhere(spec), err)
	}
	if d, ok := sched.(cron.ConstantDelaySchedule); ok {
		return EverySchedule{d: d.Delay}, nil
	}
	fields := strings.Fields(stripZone(spec))
	once := true
	if len(fields) == 5 || len(fields) == 6 {
		hour := fields[len(fields)-4]
		once = !strings.HasPrefix(hour, "*") && !strings.HasPrefix(hour, "?")
	} else if len(fields) == 1 && fields[0] == "@hourly" {
		once = false
	}
	return cronSchedule{spec: spec, sched: sched, once: once}, nil
}

// stripZone removes a CRON_TZ= or TZ= prefix.
func stripZone(spec string) string {
	spec = strings.TrimSpace(spec)
	if strings.HasPrefix(spec, "CRON_TZ=") || strings.HasPrefix(spec, "TZ=") {
		if i := strings.IndexAny(spec, " \t"); i >= 0 {
			return strings.TrimSpace(spec[i:])
		}
		return ""
	}
	return spec
}

// cronWhere says which part of a spec the parser refused, by parsing each
// field alone with every other field a wildcard.
func cronWhere(spec string) string {
	trimmed := strings.TrimSpace(spec)
	if zone, rest, ok := strings.Cut(trimmed, " "); ok && (strings.HasPrefix(zone, "CRON_TZ=") || strings.HasPrefix(zone, "TZ=")) {
		_, name, _ := strings.Cut(zone, "=")
		if _, err := time.LoadLocation(name); err != nil {
			return fmt.Sprintf("time zone %q", name)
		}
		trimmed = strings.TrimSpace(rest)
	}
	if strings.HasPrefix(trimmed, "@") {
		return fmt.Sprintf("descriptor %q (use @yearly, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>)", trimmed)
	}
	fields := strings.Fields(trimmed)
	if len(fields) != 5 && len(fields) != 6 {
		return fmt.Sprintf("%d fields; want 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)", len(fields))
	}
	names := cronFields[:]
	if len(fields) == 5 {
		names = names[1:]
	}
	for i, f := range fields {
		probe := make([]string, len(fields))
		for k := range probe {
			probe[k] = "*"
		}
		probe[i] = f
		if _, err := cronParser.Parse(strings.Join(probe, " ")); err != nil {
			return fmt.Sprintf("%s field %q", names[i], f)
		}
	}
	return "fields"
}

// Next returns the first instant of the spec strictly after after, or the
// zero time if none comes within five years (as robfig/cron).
func (c cronSchedule) Next(after time.Time) time.Time {
	n := c.sched.Next(after)
	if c.once && !n.IsZero() && repeatedWall(n) {
		n = c.sched.Next(n)
	}
	return n
}

// repeatedWall reports whether t's wall-clock time, in t's location,
// already occurred an hour earlier: t is in the second pass of an hour
// that a fall-back transition repeats.
func repeatedWall(t time.Time) bool {
	p := t.Add(-time.Hour)
	return p.Hour() == t.Hour() && p.Minute() == t.Minute() && p.Second() == t.Second() && p.YearDay() == t.YearDay()
}

// String returns the spec.
func (c cronSchedule) String() string { return c.spec }
