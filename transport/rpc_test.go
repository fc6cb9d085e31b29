package transport_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/interlockraft/interlock/transport"
)

// rpcFixture is a Server behind a Mux on loopback, and a Client.
type rpcFixture struct {
	*muxFixture
	srv       *transport.Server
	client    *transport.Client
	serveDone chan struct{}
}

func newRPC(t testing.TB, h transport.Handler, coder transport.ErrorCoder) *rpcFixture {
	t.Helper()
	f := &rpcFixture{muxFixture: newMux(t)}
	srv, err := transport.NewServer(f.mux, h, coder, nil)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	f.srv = srv
	f.serve()
	f.serveDone = make(chan struct{})
	go func() {
		defer close(f.serveDone)
		srv.Serve()
	}()
	// Cleanups run last-in first-out: client, then server, then the Mux.
	t.Cleanup(func() {
		srv.Close()
		recv(t, f.serveDone, "Server.Serve to return")
	})
	f.client = transport.NewClient(nil)
	t.Cleanup(func() { f.client.Close() })
	return f
}

func (f *rpcFixture) call(t testing.TB, m transport.Method, req []byte) []byte {
	t.Helper()
	resp, err := f.client.Call(context.Background(), f.addr(), m, req)
	if err != nil {
		t.Fatalf("Call(%d): %v", m, err)
	}
	return resp
}

// echo answers with the method byte followed by the request.
func echo(_ context.Context, m transport.Method, req []byte) ([]byte, error) {
	return append([]byte{byte(m)}, req...), nil
}

// callResult is a Call's outcome, for Calls run in their own goroutine.
type callResult struct {
	resp []byte
	err  error
}

func callAsync(c *transport.Client, ctx context.Context, addr string, m transport.Method, req []byte) <-chan callResult {
	ch := make(chan callResult, 1)
	go func() {
		resp, err := c.Call(ctx, addr, m, req)
		ch <- callResult{resp, err}
	}()
	return ch
}

func TestCallRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	tests := []struct {
		name string
		m    transport.Method
		req  []byte
	}{
		{"nil request", 1, nil},
		{"empty request", 2, []byte{}},
		{"short", 3, []byte("hello")},
		{"every byte value", 0, every},
		{"method 255", 255, []byte("x")},
		{"1 MiB", 7, big},
		{"1 MiB plus one", 8, append(big, 0xaa)},
	}
	f := newRPC(t, echo, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.call(t, tt.m, tt.req)
			if len(resp) != len(tt.req)+1 {
				t.Fatalf("response is %d bytes, want %d", len(resp), len(tt.req)+1)
			}
			if resp[0] != byte(tt.m) {
				t.Errorf("handler saw method %d, want %d", resp[0], tt.m)
			}
			if !bytes.Equal(resp[1:], tt.req) {
				t.Errorf("payload did not round trip")
			}
		})
	}
}

func TestCallResponseBodies(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	tests := []struct {
		name string
		resp []byte
	}{
		{"nil response", nil},
		{"empty response", []byte{}},
		{"1 MiB response to an empty request", big},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRPC(t, func(context.Context, transport.Method, []byte) ([]byte, error) { return tt.resp, nil }, nil)
			if got := f.call(t, 1, nil); !bytes.Equal(got, tt.resp) {
				t.Errorf("response of %d bytes, want %d", len(got), len(tt.resp))
			}
		})
	}
}

var (
	errNotLeader = errors.New("not the leader")
	errNoQuorum  = errors.New("no quorum")
	errOther     = errors.New("something else")
)

func testCoder(err error) uint16 {
	switch {
	case errors.Is(err, errNotLeader):
		return 7
	case errors.Is(err, errNoQuorum):
		return 65535
	default:
		return 0
	}
}

func TestCallRemoteError(t *testing.T) {
	tests := []struct {
		name     string
		coder    transport.ErrorCoder
		herr     error
		wantCode uint16
	}{
		{"coded sentinel", testCoder, errNotLeader, 7},
		{"wrapped sentinel", testCoder, fmt.Errorf("propose: %w", errNotLeader), 7},
		{"largest code", testCoder, errNoQuorum, 65535},
		{"uncoded error", testCoder, errOther, 0},
		{"nil coder", nil, errNotLeader, 0},
		{"empty message", testCoder, errors.New(""), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRPC(t, func(_ context.Context, m transport.Method, req []byte) ([]byte, error) {
				if m == 1 {
					return nil, tt.herr
				}
				return echo(context.Background(), m, req)
			}, tt.coder)
			// Repeat to check that a remote error leaves the connection usable.
			for range 3 {
				resp, err := f.client.Call(context.Background(), f.addr(), 1, []byte("req"))
				var re *transport.RemoteError
				if !errors.As(err, &re) {
					t.Fatalf("Call error = %v (%T), want *RemoteError", err, err)
				}
				if re.Code != tt.wantCode || re.Message != tt.herr.Error() || re.Error() != tt.herr.Error() {
					t.Errorf("RemoteError = {Code: %d, Message: %q}, want {%d, %q}", re.Code, re.Message, tt.wantCode, tt.herr.Error())
				}
				if resp != nil {
					t.Errorf("response %q alongside an error", resp)
				}
				if got := f.call(t, 2, []byte("after")); string(got) != "\x02after" {
					t.Errorf("call after a remote error returned %q", got)
				}
			}
			if n := f.ln.accepted.Load(); n != 1 {
				t.Errorf("server accepted %d connections, want 1: remote errors must not discard the connection", n)
			}
		})
	}
}

// TestConcurrentCalls makes 64 Calls that are all in the handler at the same
// time (a barrier holds them), then more calls from each goroutine, and
// checks every caller gets its own response.
func TestConcurrentCalls(t *testing.T) {
	const callers = 64
	var arrived sync.WaitGroup
	arrived.Add(callers)
	allIn := make(chan struct{})
	go func() { arrived.Wait(); close(allIn) }()

	f := newRPC(t, func(ctx context.Context, m transport.Method, req []byte) ([]byte, error) {
		if m == 1 { // barrier: hold until every caller is in a handler
			arrived.Done()
			select {
			case <-allIn:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return echo(ctx, m, req)
	}, nil)

	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			for i := range 10 {
				m := transport.Method(2)
				if i == 0 {
					m = 1
				}
				req := fmt.Appendf(nil, "caller %d call %d", g, i)
				resp, err := f.client.Call(context.Background(), f.addr(), m, req)
				if err != nil {
					t.Errorf("caller %d call %d: %v", g, i, err)
					return
				}
				if want := append([]byte{byte(m)}, req...); !bytes.Equal(resp, want) {
					t.Errorf("caller %d call %d got %q, want %q", g, i, resp, want)
				}
			}
		})
	}
	wg.Wait()
	// Each of the 64 simultaneous calls needed its own connection. (Later
	// calls may dial again: the client keeps only a few idle connections.)
	if n := f.ln.accepted.Load(); n < callers {
		t.Errorf("server accepted %d connections for %d simultaneous calls", n, callers)
	}
}

// blockingHandler returns a handler that, for method 1, reports entry and
// blocks until release is closed or the server shuts down; other methods echo.
func blockingHandler(entered chan<- struct{}, release <-chan struct{}) transport.Handler {
	return func(ctx context.Context, m transport.Method, req []byte) ([]byte, error) {
		if m != 1 {
			return echo(ctx, m, req)
		}
		entered <- struct{}{}
		select {
		case <-release:
			return []byte("released"), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func TestCallContextEndsWhileHandlerBlocks(t *testing.T) {
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		// cancel says whether the test cancels the ctx once the handler is
		// running; otherwise the ctx ends on its own deadline.
		cancel bool
		want   error
	}{
		{"cancelled", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, true, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, false, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entered, release := make(chan struct{}, 1), make(chan struct{})
			f := newRPC(t, blockingHandler(entered, release), nil)
			defer close(release) // registered after newRPC: runs before the server closes

			ctx, cancel := tt.ctx()
			defer cancel()
			res := callAsync(f.client, ctx, f.addr(), 1, nil)
			recv(t, entered, "handler to start")
			if tt.cancel {
				cancel()
			}
			// The handler is still blocked: the Call must return without it.
			r := recv(t, res, "Call to return after its ctx ended")
			if !errors.Is(r.err, tt.want) {
				t.Fatalf("Call error = %v, want one wrapping %v", r.err, tt.want)
			}
			var re *transport.RemoteError
			if errors.As(r.err, &re) {
				t.Fatalf("Call error is a RemoteError: %v", r.err)
			}
			// The interrupted connection is not reused: a later call works on
			// a new connection.
			if got := f.call(t, 2, []byte("next")); string(got) != "\x02next" {
				t.Fatalf("next call returned %q", got)
			}
			if n := f.ln.accepted.Load(); n != 2 {
				t.Errorf("server accepted %d connections, want 2", n)
			}
		})
	}
}

// TestAbandonedCallKeepsItsConnection checks that a call whose ctx ends
// before the answer does not cost the connection: the client reads the late
// answer in the background and pools the connection again, so the calls
// after it need no new dial (with TLS, no new handshake). Each case ends the
// ctx its own way; a late answer that is an error frees it as well.
func TestAbandonedCallKeepsItsConnection(t *testing.T) {
	tests := []struct {
		name   string
		ctx    func() (context.Context, context.CancelFunc)
		cancel bool // the test cancels the ctx; otherwise its deadline ends it
		want   error
		answer error
	}{
		{"deadline, late answer", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, false, context.DeadlineExceeded, nil},
		{"cancelled, late answer", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, true, context.Canceled, nil},
		{"deadline, late error", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, false, context.DeadlineExceeded, errors.New("refused late")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entered, release := make(chan struct{}, 1), make(chan struct{})
			f := newRPC(t, func(ctx context.Context, m transport.Method, req []byte) ([]byte, error) {
				if m != 1 {
					return echo(ctx, m, req)
				}
				entered <- struct{}{}
				<-release
				return []byte("late"), tt.answer
			}, nil)
			var once sync.Once
			free := func() { once.Do(func() { close(release) }) }
			defer free() // registered after newRPC: runs before the server closes
			ctx, cancel := tt.ctx()
			defer cancel()
			res := callAsync(f.client, ctx, f.addr(), 1, nil)
			recv(t, entered, "handler to start")
			if tt.cancel {
				cancel()
			}
			if r := recv(t, res, "Call to return after its ctx ended"); !errors.Is(r.err, tt.want) {
				t.Fatalf("Call error = %v; want one wrapping %v", r.err, tt.want)
			}
			if n := transport.IdleConns(f.client, f.addr()); n != 0 {
				t.Fatalf("%d idle connections while the answer is still to come; want 0", n)
			}
			free()
			waitFor(t, "the abandoned call's connection to be pooled again", func() bool {
				return transport.IdleConns(f.client, f.addr()) == 1
			})
			for i := range 3 {
				if got := f.call(t, 2, []byte("next")); string(got) != "\x02next" {
					t.Fatalf("call %d after the late answer returned %q", i, got)
				}
			}
			if n := f.ln.accepted.Load(); n != 1 {
				t.Errorf("server accepted %d connections; want 1, reused after the late answer", n)
			}
		})
	}
}

// TestCloseEndsDrains checks that Close does not wait for the answer to an
// abandoned call: it closes the connection reading it and returns.
func TestCloseEndsDrains(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	f := newRPC(t, blockingHandler(entered, release), nil)
	defer close(release)
	c := transport.NewClient(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	res := callAsync(c, ctx, f.addr(), 1, nil)
	recv(t, entered, "handler to start")
	if r := recv(t, res, "Call to return after its ctx ended"); !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("Call error = %v; want DeadlineExceeded", r.err)
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	// Well before the drain would give up by itself.
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close = %v", err)
		}
	case <-time.After(transport.DrainTimeout / 2):
		t.Fatalf("Close did not return within %s while an answer was still to come", transport.DrainTimeout/2)
	}
}

func TestCallWithEndedContext(t *testing.T) {
	f := newRPC(t, echo, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.client.Call(ctx, f.addr(), 1, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Call with a cancelled ctx = %v, want one wrapping context.Canceled", err)
	}
	if n := f.ln.accepted.Load(); n != 0 {
		t.Errorf("server accepted %d connections for a cancelled call", n)
	}
}

func TestCallToClosedServer(t *testing.T) {
	t.Run("server closed after a call", func(t *testing.T) {
		f := newRPC(t, echo, nil)
		f.call(t, 1, nil) // leaves an idle connection in the client
		if err := f.srv.Close(); err != nil {
			t.Fatalf("Server.Close: %v", err)
		}
		if err := f.mux.Close(); err != nil {
			t.Fatalf("Mux.Close: %v", err)
		}
		for i := range 2 { // the stale idle connection, then a fresh dial
			_, err := f.client.Call(context.Background(), f.addr(), 1, nil)
			if err == nil {
				t.Fatalf("call %d to a closed server succeeded", i)
			}
			var re *transport.RemoteError
			if errors.As(err, &re) || errors.Is(err, transport.ErrClosed) {
				t.Errorf("call %d: error = %v, want a connection error", i, err)
			}
		}
	})
	t.Run("RPC listener closed, Mux still up", func(t *testing.T) {
		f := newRPC(t, echo, nil)
		if err := f.srv.Close(); err != nil {
			t.Fatalf("Server.Close: %v", err)
		}
		if _, err := f.client.Call(context.Background(), f.addr(), 1, nil); err == nil {
			t.Fatalf("call to a closed server succeeded")
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		ln := listenLocal(t)
		addr := ln.Addr().String()
		ln.Close()
		c := transport.NewClient(nil)
		defer c.Close()
		if _, err := c.Call(context.Background(), addr, 1, nil); err == nil {
			t.Fatalf("call to a closed port succeeded")
		}
	})
}

func TestClientClose(t *testing.T) {
	f := newRPC(t, echo, nil)
	f.call(t, 1, nil)
	if err := f.client.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// The idle connection was closed: the server sees EOF and closes its end.
	waitFor(t, "the server to see the idle connection close", func() bool { return f.ln.closed.Load() == 1 })
	for i := range 2 {
		if _, err := f.client.Call(context.Background(), f.addr(), 1, nil); !errors.Is(err, transport.ErrClosed) {
			t.Errorf("Call %d after Close = %v, want ErrClosed", i, err)
		}
	}
	if n := f.ln.accepted.Load(); n != 1 {
		t.Errorf("Calls after Close dialed: server accepted %d connections, want 1", n)
	}
	if err := f.client.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestClientCloseDuringCall checks that a Call in flight when the Client
// closes still gets its answer, and that its connection is then closed
// rather than kept idle.
func TestClientCloseDuringCall(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	f := newRPC(t, blockingHandler(entered, release), nil)
	res := callAsync(f.client, context.Background(), f.addr(), 1, nil)
	recv(t, entered, "handler to start")
	if err := f.client.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	close(release)
	r := recv(t, res, "Call to return")
	if r.err != nil || string(r.resp) != "released" {
		t.Fatalf("in-flight Call = %q, %v; want released, nil", r.resp, r.err)
	}
	waitFor(t, "the in-flight call's connection to close", func() bool { return f.ln.closed.Load() == 1 })
}

func TestConnectionReuse(t *testing.T) {
	f := newRPC(t, echo, nil)
	for i := range 20 {
		req := fmt.Appendf(nil, "call %d", i)
		if got := f.call(t, 1, req); !bytes.Equal(got[1:], req) {
			t.Fatalf("call %d returned %q", i, got)
		}
	}
	if n := f.ln.accepted.Load(); n != 1 {
		t.Errorf("20 sequential calls used %d connections, want 1", n)
	}
}

// TestServerCloseEndsHandlers checks that Close cancels the handlers' ctx,
// waits for them, and that the caller gets an error.
func TestServerCloseEndsHandlers(t *testing.T) {
	entered := make(chan struct{}, 1)
	var returned atomic.Bool
	f := newRPC(t, func(ctx context.Context, _ transport.Method, _ []byte) ([]byte, error) {
		entered <- struct{}{}
		<-ctx.Done()
		returned.Store(true)
		return nil, ctx.Err()
	}, nil)
	res := callAsync(f.client, context.Background(), f.addr(), 1, nil)
	recv(t, entered, "handler to start")
	closed := make(chan error, 1)
	go func() { closed <- f.srv.Close() }()
	recv(t, closed, "Server.Close to return")
	if !returned.Load() {
		t.Errorf("Server.Close returned before the handler did")
	}
	if r := recv(t, res, "Call to return"); r.err == nil {
		t.Errorf("Call interrupted by Server.Close succeeded with %q", r.resp)
	}
}

// TestServerDropsOversizedFrame sends a request whose length prefix exceeds
// the frame limit; the server must close the connection without allocating
// or calling the handler.
func TestServerDropsOversizedFrame(t *testing.T) {
	var calls atomic.Int64
	f := newRPC(t, func(context.Context, transport.Method, []byte) ([]byte, error) {
		calls.Add(1)
		return nil, nil
	}, nil)
	frame := binary.AppendUvarint([]byte{byte(transport.KindRPC), 1}, 1<<40)
	expectClosedByPeer(t, dialRaw(t, f.addr(), frame...))
	if n := calls.Load(); n != 0 {
		t.Errorf("handler called %d times for an oversized frame", n)
	}
}

// TestServerHandlesTruncatedRequest checks that a request cut short by the
// client closing does not reach the handler.
func TestServerHandlesTruncatedRequest(t *testing.T) {
	var calls atomic.Int64
	f := newRPC(t, func(context.Context, transport.Method, []byte) ([]byte, error) {
		calls.Add(1)
		return nil, nil
	}, nil)
	c := dialRaw(t, f.addr(), byte(transport.KindRPC), 1, 10, 'o', 'n', 'l', 'y')
	c.Close()
	waitFor(t, "the server to close the connection", func() bool { return f.ln.closed.Load() == 1 })
	if n := calls.Load(); n != 0 {
		t.Errorf("handler called %d times for a truncated request", n)
	}
}

func TestClientUsesDialer(t *testing.T) {
	f := newRPC(t, echo, nil)
	d := &countingDialer{}
	c := transport.NewClient(d)
	defer c.Close()
	for range 3 {
		if _, err := c.Call(context.Background(), f.addr(), 1, nil); err != nil {
			t.Fatalf("Call: %v", err)
		}
	}
	if got := d.dialed(); len(got) != 1 || got[0] != f.addr() {
		t.Errorf("dialer saw %q, want one dial to %s", got, f.addr())
	}

	boom := errors.New("no route")
	failing := transport.NewClient(&countingDialer{err: boom})
	defer failing.Close()
	if _, err := failing.Call(context.Background(), f.addr(), 1, nil); !errors.Is(err, boom) {
		t.Errorf("Call through a failing dialer = %v, want one wrapping %v", err, boom)
	}
}
