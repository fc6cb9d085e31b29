package transport_test

import (
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/transport"
)

func newRaftLayer(t testing.TB, f *muxFixture, advertise net.Addr, d transport.Dialer) *transport.RaftLayer {
	t.Helper()
	l, err := transport.NewRaftLayer(f.mux, advertise, d, "")
	if err != nil {
		t.Fatalf("NewRaftLayer: %v", err)
	}
	return l
}

func TestRaftLayerDialReachesAccept(t *testing.T) {
	f := newMux(t)
	layer := newRaftLayer(t, f, f.mux.Addr(), nil)
	f.serve()

	accepted := acceptAsync(layer)
	out, err := layer.Dial(raft.ServerAddress(f.addr()), waitTimeout)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer out.Close()
	r := recv(t, accepted, "Accept")
	if r.err != nil {
		t.Fatalf("Accept: %v", r.err)
	}
	in := r.conn
	defer in.Close()

	// The kind byte was written by Dial and consumed by the Mux: what the
	// accepting side reads first is the dialer's first payload byte.
	msg := []byte{byte(transport.KindRaft), 'h', 'i'}
	if _, err := out.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	if got := readN(t, in, len(msg)); !slices.Equal(got, msg) {
		t.Fatalf("accepted side read %v, want %v", got, msg)
	}
	if _, err := in.Write([]byte("ok")); err != nil {
		t.Fatalf("write back: %v", err)
	}
	if got := readN(t, out, 2); string(got) != "ok" {
		t.Fatalf("dialer read %q, want ok", got)
	}
	if in.RemoteAddr().String() != out.LocalAddr().String() {
		t.Errorf("accepted conn's RemoteAddr %s, want dialer's %s", in.RemoteAddr(), out.LocalAddr())
	}
}

func TestRaftLayerAddrIsAdvertised(t *testing.T) {
	f := newMux(t)
	adv := &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 7000}
	layer := newRaftLayer(t, f, adv, nil)
	if layer.Addr() != net.Addr(adv) {
		t.Errorf("Addr() = %v, want the advertised %v", layer.Addr(), adv)
	}
	if layer.Addr().String() == f.addr() {
		t.Errorf("Addr() returned the bind address, not the advertised one")
	}
}

func TestRaftLayerUsesDialer(t *testing.T) {
	f := newMux(t)
	d := &countingDialer{}
	layer := newRaftLayer(t, f, f.mux.Addr(), d)
	f.serve()
	accepted := acceptAsync(layer)
	c, err := layer.Dial(raft.ServerAddress(f.addr()), waitTimeout)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	c.Close()
	if r := recv(t, accepted, "Accept"); r.err != nil {
		t.Fatalf("Accept: %v", r.err)
	} else {
		r.conn.Close()
	}
	if got := d.dialed(); !slices.Equal(got, []string{f.addr()}) {
		t.Errorf("dialer saw %q, want one dial to %s", got, f.addr())
	}

	boom := errors.New("no route")
	failing := newRaftLayer(t, newMux(t), f.mux.Addr(), &countingDialer{err: boom})
	if _, err := failing.Dial(raft.ServerAddress(f.addr()), waitTimeout); !errors.Is(err, boom) {
		t.Errorf("Dial through a failing dialer: %v, want one wrapping %v", err, boom)
	}
}

func TestRaftLayerDialUnreachable(t *testing.T) {
	// An address nobody listens on: listen, note the port, close.
	ln := listenLocal(t)
	addr := ln.Addr().String()
	ln.Close()

	f := newMux(t)
	layer := newRaftLayer(t, f, f.mux.Addr(), nil)
	if c, err := layer.Dial(raft.ServerAddress(addr), waitTimeout); err == nil {
		c.Close()
		t.Fatalf("Dial to a closed port succeeded")
	}
}

func TestRaftLayerClose(t *testing.T) {
	f := newMux(t)
	layer := newRaftLayer(t, f, f.mux.Addr(), nil)
	f.serve()
	pending := acceptAsync(layer)
	if err := layer.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if r := recv(t, pending, "Accept to return"); !errors.Is(r.err, transport.ErrClosed) {
		t.Errorf("Accept after Close: %v, want ErrClosed", r.err)
	}
}

// TestRaftLayerCloseClosesStreams checks that Close ends every stream the
// layer handed out, dialed or accepted, and that Dial fails afterwards.
func TestRaftLayerCloseClosesStreams(t *testing.T) {
	f := newMux(t)
	layer := newRaftLayer(t, f, f.mux.Addr(), nil)
	f.serve()

	// A stream this layer accepted from a raw peer.
	peer := dialRaw(t, f.addr(), byte(transport.KindRaft))
	in := recv(t, acceptAsync(layer), "Accept")
	if in.err != nil {
		t.Fatalf("Accept: %v", in.err)
	}
	// A stream this layer dialed, to a plain listener.
	remote := listenLocal(t)
	defer remote.Close()
	out, err := layer.Dial(raft.ServerAddress(remote.Addr().String()), waitTimeout)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	far, err := remote.Accept()
	if err != nil {
		t.Fatalf("remote Accept: %v", err)
	}
	defer far.Close()
	if got := readN(t, far, 1); got[0] != byte(transport.KindRaft) {
		t.Fatalf("dialed stream began with %#x, want the Raft kind byte", got[0])
	}

	if err := layer.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for name, c := range map[string]net.Conn{"accepted": in.conn, "dialed": out} {
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("write on %s stream after Close = %v, want net.ErrClosed", name, err)
		}
	}
	// The peers see their connections end.
	expectClosedByPeer(t, peer)
	expectClosedByPeer(t, far)

	if c, err := layer.Dial(raft.ServerAddress(remote.Addr().String()), waitTimeout); !errors.Is(err, transport.ErrClosed) {
		if c != nil {
			c.Close()
		}
		t.Errorf("Dial after Close = %v, want ErrClosed", err)
	}
	// Closing a stream closed by the layer is harmless.
	in.conn.Close()
	out.Close()
}

// TestRaftLayerCarriesRaftRPC runs Raft's own NetworkTransport over two
// RaftLayers and exchanges an AppendEntries RPC, the way a cluster uses it.
func TestRaftLayerCarriesRaftRPC(t *testing.T) {
	newTransport := func() *raft.NetworkTransport {
		f := newMux(t)
		layer := newRaftLayer(t, f, f.mux.Addr(), nil)
		f.serve()
		tr := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  layer,
			MaxPool: 2,
			Timeout: waitTimeout,
			Logger:  hclog.NewNullLogger(),
		})
		t.Cleanup(func() { tr.Close() }) // runs before the Mux's cleanup
		return tr
	}
	leader, follower := newTransport(), newTransport()
	t.Cleanup(leader.CloseStreams) // ends the follower's connection handler

	served := make(chan error, 1)
	go func() {
		select {
		case rpc := <-follower.Consumer():
			req, ok := rpc.Command.(*raft.AppendEntriesRequest)
			if !ok {
				served <- errors.New("follower received a non-AppendEntries RPC")
				rpc.Respond(nil, errors.New("unexpected"))
				return
			}
			rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term, LastLog: req.PrevLogEntry + uint64(len(req.Entries)), Success: true}, nil)
			served <- nil
		case <-time.After(waitTimeout):
			served <- errors.New("follower received nothing")
		}
	}()

	req := &raft.AppendEntriesRequest{
		RPCHeader:    raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("leader"), Addr: []byte(leader.LocalAddr())},
		Term:         3,
		PrevLogEntry: 41,
		Entries:      []*raft.Log{{Index: 42, Term: 3, Type: raft.LogCommand, Data: []byte("cmd")}},
	}
	var resp raft.AppendEntriesResponse
	if err := leader.AppendEntries("follower", follower.LocalAddr(), req, &resp); err != nil {
		t.Fatalf("AppendEntries: %v", err)
	}
	if err := recv(t, served, "follower to serve"); err != nil {
		t.Fatal(err)
	}
	if !resp.Success || resp.Term != 3 || resp.LastLog != 42 {
		t.Errorf("response = %+v, want success, term 3, last log 42", resp)
	}
}

// TestRaftLayerCloseEndsReadsWithEOF: a read blocked on a stream when the
// layer closes returns io.EOF, as if the peer had hung up. Raft's
// NetworkTransport logs any other read error of an incoming stream at
// Error, so "use of closed network connection" used to be logged at ERROR by
// every node on a graceful shutdown.
func TestRaftLayerCloseEndsReadsWithEOF(t *testing.T) {
	f := newMux(t)
	layer := newRaftLayer(t, f, f.mux.Addr(), nil)
	f.serve()
	peer := dialRaw(t, f.addr(), byte(transport.KindRaft))
	defer peer.Close()
	in := recv(t, acceptAsync(layer), "Accept")
	if in.err != nil {
		t.Fatalf("Accept: %v", in.err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := in.conn.Read(make([]byte, 1))
		read <- err
	}()
	if err := layer.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := recv(t, read, "the blocked Read to return"); err != io.EOF {
		t.Fatalf("Read cut short by Close = %v, want io.EOF", err)
	}
}
