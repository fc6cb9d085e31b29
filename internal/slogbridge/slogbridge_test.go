package slogbridge

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// recordHandler keeps every record it is given, with its attributes
// (including those added by With) flattened into a map.
type recordHandler struct {
	level slog.Level
	attrs []slog.Attr
	mu    *sync.Mutex
	got   *[]record
}

type record struct {
	level slog.Level
	msg   string
	attrs map[string]any
}

func newRecordHandler(level slog.Level) *recordHandler {
	return &recordHandler{level: level, mu: &sync.Mutex{}, got: &[]record{}}
}

func (h *recordHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	rec := record{level: r.Level, msg: r.Message, attrs: map[string]any{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.Any()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.Any()
		return true
	})
	h.mu.Lock()
	*h.got = append(*h.got, rec)
	h.mu.Unlock()
	return nil
}

func (h *recordHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *recordHandler) WithGroup(string) slog.Handler { return h }

func (h *recordHandler) records() []record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]record(nil), *h.got...)
}

func TestLevelsMap(t *testing.T) {
	tests := []struct {
		hclog hclog.Level
		want  slog.Level
	}{
		{hclog.Trace, LevelTrace},
		{hclog.Debug, slog.LevelDebug},
		{hclog.Info, slog.LevelInfo},
		{hclog.Warn, slog.LevelWarn},
		{hclog.Error, slog.LevelError},
	}
	for _, tt := range tests {
		h := newRecordHandler(LevelTrace)
		New(slog.New(h)).Log(tt.hclog, "m")
		got := h.records()
		if len(got) != 1 || got[0].level != tt.want {
			t.Errorf("hclog %s logged as %+v; want one record at slog %s", tt.hclog, got, tt.want)
		}
	}
	h := newRecordHandler(LevelTrace)
	New(slog.New(h)).Log(hclog.Off, "m")
	if got := h.records(); len(got) != 0 {
		t.Errorf("hclog Off logged %+v; want nothing", got)
	}
}

func TestHandlerLevelDecides(t *testing.T) {
	h := newRecordHandler(slog.LevelInfo)
	l := New(slog.New(h))
	l.Trace("t")
	l.Debug("d")
	l.Info("i")
	l.Warn("w")
	if got := h.records(); len(got) != 2 || got[0].msg != "i" || got[1].msg != "w" {
		t.Errorf("records %+v; want only i and w at an Info handler", got)
	}
	if l.IsDebug() || !l.IsInfo() || l.GetLevel() != hclog.Info {
		t.Errorf("IsDebug %v IsInfo %v GetLevel %s; want false, true, info", l.IsDebug(), l.IsInfo(), l.GetLevel())
	}
}

func TestKeysAndNamesPassThrough(t *testing.T) {
	h := newRecordHandler(slog.LevelInfo)
	l := New(slog.New(h)).With("node", "n1").Named("interlock").Named("scheduler")
	l.Info("job failed", "job", "report", "tick", int64(7), "token", uint64(9))
	got := h.records()
	if len(got) != 1 {
		t.Fatalf("records %+v; want one", got)
	}
	want := map[string]any{"node": "n1", "logger": "interlock.scheduler", "job": "report", "tick": int64(7), "token": uint64(9)}
	for k, v := range want {
		if got[0].attrs[k] != v {
			t.Errorf("attribute %s = %v (%T); want %v (%T)", k, got[0].attrs[k], got[0].attrs[k], v, v)
		}
	}
	if l.Name() != "interlock.scheduler" {
		t.Errorf("Name() = %q", l.Name())
	}
	if args := l.ImpliedArgs(); len(args) != 2 || args[0] != "node" {
		t.Errorf("ImpliedArgs() = %v; want [node n1]", args)
	}
}

func TestStandardLogger(t *testing.T) {
	h := newRecordHandler(slog.LevelInfo)
	New(slog.New(h)).StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}).Print("from log")
	if got := h.records(); len(got) != 1 || got[0].level != slog.LevelWarn || got[0].msg != "from log" {
		t.Errorf("records %+v; want one Warn", got)
	}
}
