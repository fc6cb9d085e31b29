package transport_test

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/interlockraft/interlock/transport"
)

func TestMuxRoutesByKind(t *testing.T) {
	f := newMux(t)
	subs := map[transport.Kind]net.Listener{
		transport.KindRaft: f.listen(t, transport.KindRaft),
		transport.KindRPC:  f.listen(t, transport.KindRPC),
	}
	f.serve()

	for _, k := range []transport.Kind{transport.KindRaft, transport.KindRPC, transport.KindRaft} {
		t.Run(k.String(), func(t *testing.T) {
			payload := []byte("payload for " + k.String())
			client := dialRaw(t, f.addr(), append([]byte{byte(k)}, payload...)...)
			server := accept(t, subs[k])
			// The kind byte is consumed: the first byte read is the payload's.
			if got := readN(t, server, len(payload)); string(got) != string(payload) {
				t.Fatalf("sub-listener read %q, want %q", got, payload)
			}
			// It is the same connection, in both directions.
			if _, err := server.Write([]byte("reply")); err != nil {
				t.Fatalf("write reply: %v", err)
			}
			if got := readN(t, client, 5); string(got) != "reply" {
				t.Fatalf("client read %q, want reply", got)
			}
			if server.RemoteAddr().String() != client.LocalAddr().String() {
				t.Errorf("accepted RemoteAddr %s, want the client's %s", server.RemoteAddr(), client.LocalAddr())
			}
		})
	}
}

// TestMuxClearsHandshakeDeadline checks that the read deadline guarding the
// kind byte is set during the handshake and cleared before the connection is
// handed out, so a long-lived stream does not time out after handshakeTimeout.
func TestMuxClearsHandshakeDeadline(t *testing.T) {
	f := newMux(t)
	raft := f.listen(t, transport.KindRaft)
	f.serve()
	dialRaw(t, f.addr(), byte(transport.KindRaft))
	c, ok := netConn(accept(t, raft)).(*countedConn)
	if !ok {
		t.Fatalf("accepted connection is not the listener's own")
	}
	dl := c.deadlines()
	if len(dl) < 2 || dl[0].IsZero() {
		t.Fatalf("read deadlines set = %v, want a handshake deadline then a reset", dl)
	}
	if last := dl[len(dl)-1]; !last.IsZero() {
		t.Errorf("connection handed out with read deadline %v, want none", last)
	}
}

// TestMuxRoutesConcurrently dials many connections of both kinds at once and
// checks each sub-listener receives exactly its own.
func TestMuxRoutesConcurrently(t *testing.T) {
	const perKind = 25
	f := newMux(t)
	kinds := []transport.Kind{transport.KindRaft, transport.KindRPC}
	subs := map[transport.Kind]net.Listener{}
	for _, k := range kinds {
		subs[k] = f.listen(t, k)
	}
	f.serve()

	got := map[transport.Kind][]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, k := range kinds {
		wg.Go(func() {
			for range perKind {
				c := accept(t, subs[k])
				msg := string(readN(t, c, len("raft-00")))
				mu.Lock()
				got[k] = append(got[k], msg)
				mu.Unlock()
			}
		})
	}
	var dials sync.WaitGroup
	for i := range perKind {
		for _, k := range kinds {
			dials.Go(func() {
				c, err := net.Dial("tcp", f.addr())
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				t.Cleanup(func() { c.Close() })
				name := fmt.Sprintf("%-4s-%02d", k, i)
				if _, err := c.Write(append([]byte{byte(k)}, name...)); err != nil {
					t.Errorf("write: %v", err)
				}
			})
		}
	}
	dials.Wait()
	wg.Wait()
	for _, k := range kinds {
		var want []string
		for i := range perKind {
			want = append(want, fmt.Sprintf("%-4s-%02d", k, i))
		}
		slices.Sort(got[k])
		if !slices.Equal(got[k], want) {
			t.Errorf("%s listener got %q, want %q", k, got[k], want)
		}
	}
}

func TestMuxDropsUnroutableConnections(t *testing.T) {
	tests := []struct {
		name string
		kind byte
	}{
		{"kind 0", 0},
		{"kind 3", 3},
		{"kind 255", 255},
		{"known kind without a listener", byte(transport.KindRPC)},
	}
	f := newMux(t)
	raft := f.listen(t, transport.KindRaft)
	f.serve()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, f.addr(), tt.kind, 'x', 'y')
			expectClosedByPeer(t, c)
			// The dropped connection was never delivered: the next Accept
			// yields the next Raft connection.
			dialRaw(t, f.addr(), byte(transport.KindRaft), 'r')
			if got := readN(t, accept(t, raft), 1); got[0] != 'r' {
				t.Fatalf("Raft listener read %q, want r", got)
			}
		})
	}
}

func TestMuxIgnoresConnectionClosedBeforeKind(t *testing.T) {
	f := newMux(t)
	raft := f.listen(t, transport.KindRaft)
	f.serve()
	c := dialRaw(t, f.addr())
	c.Close()
	dialRaw(t, f.addr(), byte(transport.KindRaft), 'r')
	if got := readN(t, accept(t, raft), 1); got[0] != 'r' {
		t.Fatalf("Raft listener read %q, want r", got)
	}
}

func TestMuxListenTwice(t *testing.T) {
	f := newMux(t)
	for _, k := range []transport.Kind{transport.KindRaft, transport.KindRPC, 9} {
		ln, err := f.mux.Listen(k)
		if err != nil {
			t.Fatalf("first Listen(%s): %v", k, err)
		}
		if ln.Addr().String() != f.addr() {
			t.Errorf("sub-listener Addr %s, want the Mux's %s", ln.Addr(), f.addr())
		}
		if _, err := f.mux.Listen(k); !errors.Is(err, transport.ErrKindTaken) {
			t.Errorf("second Listen(%s) error = %v, want ErrKindTaken", k, err)
		}
	}
	if _, err := transport.NewRaftLayer(f.mux, f.mux.Addr(), nil, ""); !errors.Is(err, transport.ErrKindTaken) {
		t.Errorf("NewRaftLayer on a Mux with a Raft listener: %v, want ErrKindTaken", err)
	}
	if _, err := transport.NewServer(f.mux, nil, nil, nil); !errors.Is(err, transport.ErrKindTaken) {
		t.Errorf("NewServer on a Mux with an RPC listener: %v, want ErrKindTaken", err)
	}
}

func TestMuxClose(t *testing.T) {
	f := newMux(t)
	raft := f.listen(t, transport.KindRaft)
	rpc := f.listen(t, transport.KindRPC)
	f.serve()
	// Accepts blocked before Close must be released by it.
	pending := []<-chan acceptResult{acceptAsync(raft), acceptAsync(rpc)}

	if err := f.mux.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := f.waitServe(t); err != nil {
		t.Errorf("Serve returned %v after Close, want nil", err)
	}
	for i, ch := range pending {
		if r := recv(t, ch, "blocked Accept to return"); !errors.Is(r.err, transport.ErrClosed) || r.conn != nil {
			t.Errorf("blocked Accept %d returned %v, %v; want ErrClosed", i, r.conn, r.err)
		}
	}
	for _, ln := range []net.Listener{raft, rpc} {
		if c, err := ln.Accept(); !errors.Is(err, transport.ErrClosed) || c != nil {
			t.Errorf("Accept after Close = %v, %v; want ErrClosed", c, err)
		}
	}
	if err := f.mux.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	// Serve on a closed Mux returns at once, with nil.
	if err := f.mux.Serve(); err != nil {
		t.Errorf("Serve after Close = %v, want nil", err)
	}
}

// TestMuxSubListenerClose checks that closing one sub-listener stops only
// its kind: its Accept fails and new connections of that kind are dropped.
func TestMuxSubListenerClose(t *testing.T) {
	f := newMux(t)
	raft := f.listen(t, transport.KindRaft)
	rpc := f.listen(t, transport.KindRPC)
	f.serve()
	if err := rpc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := rpc.Accept(); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Accept on a closed sub-listener: %v, want ErrClosed", err)
	}
	expectClosedByPeer(t, dialRaw(t, f.addr(), byte(transport.KindRPC)))
	dialRaw(t, f.addr(), byte(transport.KindRaft), 'r')
	if got := readN(t, accept(t, raft), 1); got[0] != 'r' {
		t.Fatalf("Raft listener read %q, want r", got)
	}
}

// TestMuxServeReturnsListenerError checks that Serve reports a failure of the
// underlying listener that was not caused by Close.
func TestMuxServeReturnsListenerError(t *testing.T) {
	raw := listenLocal(t)
	m := transport.NewMux(raw, nil)
	done := make(chan error, 1)
	go func() { done <- m.Serve() }()
	raw.Close()
	if err := recv(t, done, "Serve to return"); err == nil {
		t.Errorf("Serve returned nil after its listener failed")
	}
	m.Close()
}

// flakyListener fails its first Accept with a temporary timeout.
type flakyListener struct {
	net.Listener
	once sync.Once
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func (l *flakyListener) Accept() (net.Conn, error) {
	var fail bool
	l.once.Do(func() { fail = true })
	if fail {
		return nil, timeoutError{}
	}
	return l.Listener.Accept()
}

func TestMuxServeSurvivesAcceptTimeout(t *testing.T) {
	f := newMuxOn(t, &flakyListener{Listener: listenLocal(t)})
	raft := f.listen(t, transport.KindRaft)
	f.serve()
	dialRaw(t, f.addr(), byte(transport.KindRaft), 'r')
	if got := readN(t, accept(t, raft), 1); got[0] != 'r' {
		t.Fatalf("Raft listener read %q, want r", got)
	}
}

// TestMuxCloseWhileConnecting closes the Mux while clients keep connecting.
// Close must not return while a routing goroutine still runs (goleak in
// TestMain checks that), and the race detector watches the WaitGroup.
func TestMuxCloseWhileConnecting(t *testing.T) {
	for round := range 20 {
		f := newMux(t)
		f.listen(t, transport.KindRaft)
		f.serve()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					c, err := net.Dial("tcp", f.addr())
					if err != nil {
						return // the Mux closed
					}
					_, _ = c.Write([]byte{byte(transport.KindRaft)})
					c.Close()
				}
			})
		}
		waitFor(t, "connections to arrive", func() bool { return f.ln.accepted.Load() > int64(round%5) })
		if err := f.mux.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		close(stop)
		wg.Wait()
	}
}

func TestKindString(t *testing.T) {
	tests := []struct {
		k    transport.Kind
		want string
	}{
		{transport.KindRaft, "raft"},
		{transport.KindRPC, "rpc"},
		{0, "kind(0)"},
		{200, "kind(200)"},
	}
	for _, tt := range tests {
		if got := tt.k.String(); got != tt.want {
			t.Errorf("Kind(%d).String() = %q, want %q", byte(tt.k), got, tt.want)
		}
	}
}
