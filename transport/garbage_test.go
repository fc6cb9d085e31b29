package transport_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/transport"
)

// logBuffer collects a logger's lines; it is safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// count returns how many lines contain s.
func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// hardFixture is a live Mux with an RPC server (echo) and a Raft layer,
// logging at Debug into logs, with its limits shortened so refusals happen
// within a test's time.
type hardFixture struct {
	mux    *transport.Mux
	srv    *transport.Server
	layer  *transport.RaftLayer
	client *transport.Client
	logs   *logBuffer
}

const (
	testFrameTimeout = 300 * time.Millisecond
	testIdleTimeout  = 2 * time.Second
)

func newHardFixture(t testing.TB, maxConns int) *hardFixture {
	t.Helper()
	f := &hardFixture{logs: &logBuffer{}}
	logger := hclog.New(&hclog.LoggerOptions{Output: f.logs, Level: hclog.Debug})
	ln := listenLocal(t)
	f.mux = transport.NewMux(ln, logger)
	if maxConns > 0 {
		transport.SetMaxConns(f.mux, maxConns)
	}
	transport.SetHandshakeTimeout(f.mux, testFrameTimeout)
	srv, err := transport.NewServer(f.mux, echo, nil, logger)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	transport.SetServerTimeouts(srv, testFrameTimeout, testIdleTimeout)
	f.srv = srv
	layer, err := transport.NewRaftLayer(f.mux, ln.Addr(), nil, "")
	if err != nil {
		t.Fatalf("NewRaftLayer: %v", err)
	}
	f.layer = layer
	muxDone := make(chan struct{})
	srvDone := make(chan struct{})
	go func() { defer close(muxDone); _ = f.mux.Serve() }()
	go func() { defer close(srvDone); srv.Serve() }()
	f.client = transport.NewClient(nil)
	t.Cleanup(func() {
		f.client.Close()
		srv.Close()
		layer.Close()
		f.mux.Close()
		recv(t, srvDone, "Server.Serve to return")
		recv(t, muxDone, "Mux.Serve to return")
	})
	return f
}

func (f *hardFixture) addr() string { return f.mux.Addr().String() }

// expectServing checks that a normal RPC still gets its answer.
func (f *hardFixture) expectServing(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	resp, err := f.client.Call(ctx, f.addr(), 7, []byte("ping"))
	if err != nil {
		t.Fatalf("normal RPC while under garbage: %v", err)
	}
	if want := "\x07ping"; string(resp) != want {
		t.Fatalf("normal RPC answered %q, want %q", resp, want)
	}
}

// frameHeader is an RPC request's tag and length prefix announcing n bytes.
func frameHeader(method byte, n uint64) []byte {
	return binary.AppendUvarint([]byte{method}, n)
}

const garbageLine = "closing rpc connection that sent a malformed or stalled frame"

// TestServerClosesGarbage sends each kind of malformed RPC input on a live
// server, several times over: each connection is closed, the refusal is
// logged exactly once, and a normal RPC is served right after.
func TestServerClosesGarbage(t *testing.T) {
	kind := byte(transport.KindRPC)
	tests := []struct {
		name string
		// send writes the garbage on c (the kind byte is already sent).
		send func(t *testing.T, c net.Conn)
	}{
		{"truncated frame then close", func(t *testing.T, c net.Conn) {
			write(t, c, append(frameHeader(1, 100), "only ten b"...))
			c.(*net.TCPConn).CloseWrite()
		}},
		{"truncated frame then silence", func(t *testing.T, c net.Conn) {
			write(t, c, append(frameHeader(1, 100), "only ten b"...))
		}},
		{"length over the limit", func(t *testing.T, c net.Conn) {
			write(t, c, frameHeader(1, transport.MaxFrame+1))
		}},
		{"length of 2^63", func(t *testing.T, c net.Conn) {
			write(t, c, frameHeader(1, 1<<63))
		}},
		{"length prefix that overflows 64 bits", func(t *testing.T, c net.Conn) {
			write(t, c, []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
		}},
		{"maximum length announced, nothing sent", func(t *testing.T, c net.Conn) {
			write(t, c, frameHeader(1, transport.MaxFrame))
		}},
		{"slowloris: one byte at a time", func(t *testing.T, c net.Conn) {
			write(t, c, frameHeader(1, 1<<20))
			// Keep trickling until the server gives up; each byte arrives
			// well within any per-read timeout, so only a per-frame
			// deadline ends this.
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			deadline := time.After(waitTimeout)
			for {
				select {
				case <-tick.C:
					if _, err := c.Write([]byte{'x'}); err != nil {
						return // closed by the server
					}
				case <-deadline:
					t.Fatalf("server still reading a trickled frame after %v", waitTimeout)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newHardFixture(t, 0)
			const repeats = 5
			for range repeats {
				c := dialRaw(t, f.addr(), kind)
				tt.send(t, c)
				expectClosedByPeer(t, c)
				f.expectServing(t)
			}
			if n := f.logs.count(garbageLine); n != 1 {
				t.Errorf("%d connections logged %d lines %q, want exactly 1:\n%s", repeats, n, garbageLine, f.logs)
			}
		})
	}
}

// TestMuxClosesGarbageConnections covers what the Mux itself refuses: an
// unknown kind byte and a connection that sends no kind byte at all.
func TestMuxClosesGarbageConnections(t *testing.T) {
	tests := []struct {
		name   string
		prefix []byte
		line   string
	}{
		{"unknown kind", []byte{0x47, 'E', 'T', ' ', '/'}, "dropping connection of unknown kind"},
		{"silent after connect", nil, "connection closed before its kind byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newHardFixture(t, 0)
			const repeats = 5
			for range repeats {
				c := dialRaw(t, f.addr(), tt.prefix...)
				expectClosedByPeer(t, c)
				f.expectServing(t)
			}
			if n := f.logs.count(tt.line); n != 1 {
				t.Errorf("%d connections logged %d lines %q, want exactly 1:\n%s", repeats, n, tt.line, f.logs)
			}
		})
	}
}

// TestServerKeepsIdleConnectionBetweenFrames checks that the per-frame
// deadline does not apply between requests: a pooled connection idle for
// longer than a frame may take is still served, and one idle past the idle
// allowance is closed quietly (Debug), not as garbage.
func TestServerKeepsIdleConnectionBetweenFrames(t *testing.T) {
	f := newHardFixture(t, 0)
	c := dialRaw(t, f.addr(), byte(transport.KindRPC))
	roundTrip := func() {
		t.Helper()
		write(t, c, append(frameHeader(3, 2), "hi"...))
		if got := readN(t, c, 5); string(got) != "\x00\x03\x03hi" {
			t.Fatalf("response %q, want status 0, length 3, \\x03hi", got)
		}
	}
	roundTrip()
	// Idle for three frame timeouts: still open.
	idle := time.NewTimer(3 * testFrameTimeout)
	<-idle.C
	roundTrip()
	start := time.Now()
	expectClosedByPeer(t, c)
	if waited := time.Since(start); waited < testIdleTimeout/2 {
		t.Errorf("idle connection closed after %v, want about the idle allowance %v", waited, testIdleTimeout)
	}
	if n := f.logs.count(garbageLine); n != 0 {
		t.Errorf("an idle pooled connection was logged as garbage:\n%s", f.logs)
	}
}

// TestMuxCapsConnections fills the cap with idle connections: the next one
// is closed on accept with one log line, and once a slot frees a new
// connection is served.
func TestMuxCapsConnections(t *testing.T) {
	const limit = 4
	f := newHardFixture(t, limit)
	var held []net.Conn
	for range limit - 1 {
		held = append(held, dialRaw(t, f.addr(), byte(transport.KindRPC)))
	}
	// The client's own pooled connection takes the last slot.
	f.expectServing(t)
	for range 3 {
		expectClosedByPeer(t, dialRaw(t, f.addr(), byte(transport.KindRPC)))
	}
	if n := f.logs.count("refusing connections over the per-node cap"); n != 1 {
		t.Errorf("3 refusals logged %d lines, want 1:\n%s", n, f.logs)
	}
	held[0].Close()
	// The server notices the close, closes its end and frees the slot.
	waitFor(t, "a freed slot to serve a new connection", func() bool {
		c, err := net.DialTimeout("tcp", f.addr(), waitTimeout)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(waitTimeout))
		if _, err := c.Write(append([]byte{byte(transport.KindRPC)}, append(frameHeader(3, 2), "hi"...)...)); err != nil {
			return false
		}
		var b [5]byte
		_, err = io.ReadFull(c, b[:])
		return err == nil
	})
}

// TestRaftLayerEndsIdleInboundStream checks that an inbound Raft stream
// that goes silent ends as a clean end of stream.
func TestRaftLayerEndsIdleInboundStream(t *testing.T) {
	f := newHardFixture(t, 0)
	transport.SetRaftIdleTimeout(f.layer, testFrameTimeout)
	dialRaw(t, f.addr(), byte(transport.KindRaft), 'r')
	in := accept(t, f.layer)
	if got := readN(t, in, 1); got[0] != 'r' {
		t.Fatalf("read %q, want r", got)
	}
	_ = in.SetReadDeadline(time.Time{})
	var b [1]byte
	done := make(chan error, 1)
	go func() { _, err := in.Read(b[:]); done <- err }()
	if err := recv(t, done, "the idle stream's read to end"); err == nil || err.Error() != "EOF" {
		t.Fatalf("idle inbound stream read = %v, want EOF", err)
	}
}

// TestGarbageFloodKeepsMemoryFlat opens 1,000 connections that each
// announce a maximum-size frame and then send nothing. Before the hardening
// each made the server allocate the announced 64 MiB; now the heap stays
// flat, a normal RPC is answered meanwhile, and every connection is closed
// once its frame deadline passes (goleak in TestMain checks no goroutine
// outlives the test).
func TestGarbageFloodKeepsMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,000 connections")
	}
	const conns = 1000
	f := newHardFixture(t, 0)
	// The client's pooled connection idles while the flood is cut off; the
	// idle allowance outlasts that, as rpcIdleTimeout outlasts the client's
	// own pool timeout.
	transport.SetServerTimeouts(f.srv, 3*time.Second, time.Minute)
	heapInUse := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	before := heapInUse()
	hdr := append([]byte{byte(transport.KindRPC)}, frameHeader(1, transport.MaxFrame)...)
	open := make([]net.Conn, 0, conns)
	for range conns {
		open = append(open, dialRaw(t, f.addr(), hdr...))
	}
	// Wait until the server has read every header: each connection then
	// sits in readFrame with its full announcement seen.
	f.expectServing(t)
	during := heapInUse()
	growth := int64(during) - int64(before)
	t.Logf("heap in use: %d MiB before, %d MiB with %d connections announcing %d MiB each (growth %d KiB); %s",
		before>>20, during>>20, conns, transport.MaxFrame>>20, growth>>10, procMemory())
	if growth > 64<<20 {
		t.Errorf("heap grew by %d MiB with %d stalled connections, want under 64 MiB", growth>>20, conns)
	}
	for _, c := range open {
		expectClosedByPeer(t, c)
	}
	f.expectServing(t)
}

// write writes p on c, failing the test on error.
func write(t testing.TB, c net.Conn, p []byte) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := c.Write(p); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// procMemory returns the process's virtual size and RSS where /proc has
// them, for the log.
func procMemory() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "no /proc"
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmSize") || strings.HasPrefix(l, "VmRSS") {
			out = append(out, strings.Join(strings.Fields(l), " "))
		}
	}
	return strings.Join(out, ", ")
}
