package transport_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/interlockraft/interlock/transport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait in these tests. It is a failure guard, not a
// sleep: tests proceed as soon as the awaited event happens.
const waitTimeout = 10 * time.Second

// countingListener counts the raw connections it accepts and how many of
// them were closed (by either side's code calling Close on the server end).
type countingListener struct {
	net.Listener
	accepted atomic.Int64
	closed   atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.accepted.Add(1)
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once

	mu            sync.Mutex
	readDeadlines []time.Time // every SetReadDeadline/SetDeadline, in order
}

func (c *countedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadlines = append(c.readDeadlines, t)
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *countedConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadlines = append(c.readDeadlines, t)
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *countedConn) deadlines() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.readDeadlines...)
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.closed.Add(1) })
	return c.Conn.Close()
}

func listenLocal(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return ln
}

// muxFixture is a Mux on a loopback listener. Register sub-listeners, then
// call serve. Cleanup closes the Mux and checks that Serve returned nil.
type muxFixture struct {
	mux *transport.Mux
	ln  *countingListener
	// serveDone is closed when Serve returns, with its result in serveErr.
	serveDone chan struct{}
	serveErr  error
}

func newMux(t testing.TB) *muxFixture {
	t.Helper()
	return newMuxOn(t, listenLocal(t))
}

func newMuxOn(t testing.TB, raw net.Listener) *muxFixture {
	t.Helper()
	ln := &countingListener{Listener: raw}
	f := &muxFixture{mux: transport.NewMux(ln, nil), ln: ln}
	t.Cleanup(func() {
		f.mux.Close()
		if f.serveDone != nil {
			if err := f.waitServe(t); err != nil {
				t.Errorf("Serve returned %v after Close, want nil", err)
			}
		}
	})
	return f
}

func (f *muxFixture) serve() {
	done := make(chan struct{})
	f.serveDone = done
	go func() {
		f.serveErr = f.mux.Serve()
		close(done)
	}()
}

// waitServe waits for Serve to return and returns its result.
func (f *muxFixture) waitServe(t testing.TB) error {
	t.Helper()
	select {
	case <-f.serveDone:
		return f.serveErr
	case <-time.After(waitTimeout):
		t.Fatalf("Serve did not return")
		return nil
	}
}

func (f *muxFixture) addr() string { return f.mux.Addr().String() }

func (f *muxFixture) listen(t testing.TB, k transport.Kind) net.Listener {
	t.Helper()
	ln, err := f.mux.Listen(k)
	if err != nil {
		t.Fatalf("Listen(%s): %v", k, err)
	}
	return ln
}

// dialRaw opens a plain TCP connection to addr and writes prefix on it.
func dialRaw(t testing.TB, addr string, prefix ...byte) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if len(prefix) > 0 {
		if _, err := c.Write(prefix); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	return c
}

type acceptResult struct {
	conn net.Conn
	err  error
}

// acceptAsync starts an Accept on ln and returns a channel for its result.
func acceptAsync(ln net.Listener) <-chan acceptResult {
	ch := make(chan acceptResult, 1)
	go func() {
		c, err := ln.Accept()
		ch <- acceptResult{c, err}
	}()
	return ch
}

// accept waits for one connection on ln.
func accept(t testing.TB, ln net.Listener) net.Conn {
	t.Helper()
	select {
	case r := <-acceptAsync(ln):
		if r.err != nil {
			t.Fatalf("Accept: %v", r.err)
		}
		t.Cleanup(func() { r.conn.Close() })
		return r.conn
	case <-time.After(waitTimeout):
		t.Fatalf("Accept did not return")
		return nil
	}
}

// readN reads exactly n bytes from c, failing the test on error or timeout.
func readN(t testing.TB, c net.Conn, n int) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return buf
}

// expectClosedByPeer checks that the far side closed c: a read returns EOF
// (or a reset) rather than data or a timeout.
func expectClosedByPeer(t testing.TB, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	var b [1]byte
	n, err := c.Read(b[:])
	if n > 0 {
		t.Fatalf("read %q from a connection the peer should have closed", b[:n])
	}
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("read error = %v, want EOF or reset from the peer closing", err)
	}
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// recv waits for a value from ch.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// countingDialer counts dials and delegates to a net.Dialer, or fails with
// err if it is set.
type countingDialer struct {
	d     net.Dialer
	err   error
	mu    sync.Mutex
	addrs []string
}

func (d *countingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, addr)
	d.mu.Unlock()
	if d.err != nil {
		return nil, d.err
	}
	return d.d.DialContext(ctx, network, addr)
}

func (d *countingDialer) dialed() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.addrs...)
}

// netConn unwraps the Mux's own connection wrapper (which holds a slot of
// the connection cap) to reach the listener's connection.
func netConn(c net.Conn) net.Conn {
	if u, ok := c.(interface{ NetConn() net.Conn }); ok {
		return u.NetConn()
	}
	return c
}
