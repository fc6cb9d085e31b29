// Package slogbridge lets a *slog.Logger stand in for the hclog.Logger
// that Interlock and its libraries (hashicorp/raft, memberlist) log to.
package slogbridge

import (
	"context"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// LevelTrace is the slog level hclog's Trace maps to: one step below
// slog.LevelDebug, as slog's levels leave room for.
const LevelTrace = slog.LevelDebug - 4

// Level maps an hclog level to a slog level. hclog.NoLevel and Off have no
// slog counterpart: NoLevel logs at Info, Off is reported as not slog's.
func Level(l hclog.Level) (slog.Level, bool) {
	switch l {
	case hclog.Trace:
		return LevelTrace, true
	case hclog.Debug:
		return slog.LevelDebug, true
	case hclog.Info, hclog.NoLevel, hclog.DefaultLevel:
		return slog.LevelInfo, true
	case hclog.Warn:
		return slog.LevelWarn, true
	case hclog.Error:
		return slog.LevelError, true
	default:
		return 0, false
	}
}

// New returns an hclog.Logger that writes to l. Key/value pairs pass
// through unchanged, so the stable keys (node, job, tick, token) arrive
// as slog attributes; a Named logger's name arrives as the "logger"
// attribute. Levels follow Level; l's handler decides what is enabled, so
// SetLevel has no effect. It is safe for concurrent use, as l is.
func New(l *slog.Logger) hclog.Logger {
	return &logger{l: l}
}

type logger struct {
	l       *slog.Logger
	name    string
	implied []any
}

var _ hclog.Logger = (*logger)(nil)

func (g *logger) Log(level hclog.Level, msg string, args ...any) {
	lvl, ok := Level(level)
	if !ok {
		return
	}
	ctx := context.Background()
	if !g.l.Enabled(ctx, lvl) {
		return
	}
	if g.name != "" {
		args = append([]any{"logger", g.name}, args...)
	}
	g.l.Log(ctx, lvl, msg, args...)
}

func (g *logger) Trace(msg string, args ...any) { g.Log(hclog.Trace, msg, args...) }
func (g *logger) Debug(msg string, args ...any) { g.Log(hclog.Debug, msg, args...) }
func (g *logger) Info(msg string, args ...any)  { g.Log(hclog.Info, msg, args...) }
func (g *logger) Warn(msg string, args ...any)  { g.Log(hclog.Warn, msg, args...) }
func (g *logger) Error(msg string, args ...any) { g.Log(hclog.Error, msg, args...) }

func (g *logger) enabled(level hclog.Level) bool {
	lvl, _ := Level(level)
	return g.l.Enabled(context.Background(), lvl)
}

func (g *logger) IsTrace() bool { return g.enabled(hclog.Trace) }
func (g *logger) IsDebug() bool { return g.enabled(hclog.Debug) }
func (g *logger) IsInfo() bool  { return g.enabled(hclog.Info) }
func (g *logger) IsWarn() bool  { return g.enabled(hclog.Warn) }
func (g *logger) IsError() bool { return g.enabled(hclog.Error) }

func (g *logger) ImpliedArgs() []any { return append([]any(nil), g.implied...) }

func (g *logger) With(args ...any) hclog.Logger {
	return &logger{l: g.l.With(args...), name: g.name, implied: append(g.ImpliedArgs(), args...)}
}

func (g *logger) Name() string { return g.name }

func (g *logger) Named(name string) hclog.Logger {
	if g.name != "" {
		name = g.name + "." + name
	}
	return g.ResetNamed(name)
}

func (g *logger) ResetNamed(name string) hclog.Logger {
	return &logger{l: g.l, name: name, implied: g.ImpliedArgs()}
}

// SetLevel does nothing: the slog handler decides which levels are
// enabled.
func (g *logger) SetLevel(hclog.Level) {}

// GetLevel returns the lowest level the slog handler enables.
func (g *logger) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if g.enabled(l) {
			return l
		}
	}
	return hclog.Off
}

func (g *logger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	lvl := slog.LevelInfo
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		if l, ok := Level(opts.ForceLevel); ok {
			lvl = l
		}
	}
	return slog.NewLogLogger(g.l.Handler(), lvl)
}

func (g *logger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	return g.StandardLogger(opts).Writer()
}
