package transport

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// throttledLog logs one kind of refusal at most once per logEvery, counting
// what it suppressed in between, so a flood of garbage connections costs a
// log line every few seconds rather than one per connection. It is safe for
// concurrent use.
type throttledLog struct {
	logger hclog.Logger
	level  hclog.Level
	msg    string

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func newThrottledLog(logger hclog.Logger, level hclog.Level, msg string) *throttledLog {
	return &throttledLog{logger: logger, level: level, msg: msg}
}

// log writes the line with args unless one was written within logEvery.
func (t *throttledLog) log(args ...any) {
	t.mu.Lock()
	now := time.Now()
	if !t.last.IsZero() && now.Sub(t.last) < logEvery {
		t.suppressed++
		t.mu.Unlock()
		return
	}
	t.last = now
	n := t.suppressed
	t.suppressed = 0
	t.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	t.logger.Log(t.level, t.msg, args...)
}
