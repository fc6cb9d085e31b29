package transport

import "time"

// SetMaxConns replaces m's connection cap; call it before Serve.
func SetMaxConns(m *Mux, n int) { m.slots = make(chan struct{}, n) }

// SetHandshakeTimeout shortens m's wait for a kind byte; call it before Serve.
func SetHandshakeTimeout(m *Mux, d time.Duration) { m.handshake = d }

// SetServerTimeouts shortens s's limits; call it before Serve.
func SetServerTimeouts(s *Server, frame, idle time.Duration) {
	s.frameTimeout, s.idleTimeout = frame, idle
}

// Limits exposed to the tests, so they state their expectations in the
// package's own terms.
const (
	MaxFrame = maxFrame
	MaxConns = maxConns

	DrainTimeout = drainTimeout
)

// SetRaftIdleTimeout shortens l's idle limit on inbound streams; call it
// before Accept.
func SetRaftIdleTimeout(l *RaftLayer, d time.Duration) { l.idleAfter = d }

// IdleConns is how many connections to addr c has pooled.
func IdleConns(c *Client, addr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.idle[addr])
}
