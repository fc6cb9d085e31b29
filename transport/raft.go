package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// RaftLayer is the raft.StreamLayer over a Mux: it accepts KindRaft
// connections and dials peers with the kind byte already sent. It is safe
// for concurrent use.
//
// An inbound stream on which nothing arrives for raftIdleTimeout is ended as
// a clean end of stream (see trackedConn.Read); the messages themselves are
// Raft's own msgpack, which it decodes incrementally.
//
// It tracks every connection it hands out and closes them all on Close.
// raft.NetworkTransport closes only its listener on shutdown, so a handler
// blocked reading from a live peer would otherwise outlive the node.
type RaftLayer struct {
	ln        net.Listener
	advertise net.Addr
	dialer    Dialer
	// id is the Raft server ID this layer serves; a KindRaftTo stream
	// meant for another is refused (raftto.go). Empty: any is accepted.
	id          raft.ServerID
	idle        *throttledLog
	badTarget   *throttledLog
	wrongTarget *throttledLog
	idleAfter   time.Duration // raftIdleTimeout; a field so tests can shorten it

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

var _ raft.StreamLayer = (*RaftLayer)(nil)

// NewRaftLayer returns the Raft stream layer of a Mux for the Raft server
// id. advertise is the address peers reach this node at; it must not be an
// unspecified address. Streams dialed for another server ID (RaftTarget)
// are refused; with id empty, none is.
func NewRaftLayer(m *Mux, advertise net.Addr, d Dialer, id raft.ServerID) (*RaftLayer, error) {
	ln, err := m.Listen(KindRaft)
	if err != nil {
		return nil, err
	}
	if d == nil {
		d = &net.Dialer{}
	}
	l := &RaftLayer{
		ln: ln, advertise: advertise, dialer: d, id: id,
		idle:        newThrottledLog(m.logger, hclog.Debug, "closing idle inbound raft stream"),
		badTarget:   newThrottledLog(m.logger, hclog.Debug, "closing raft stream that named no server"),
		wrongTarget: newThrottledLog(m.logger, hclog.Warn, "refusing raft stream meant for another server"),
		idleAfter:   raftIdleTimeout,
		conns:       make(map[*trackedConn]struct{}),
	}
	if err := m.listenAlso(KindRaft, KindRaftTo, l.admitTarget); err != nil {
		return nil, err
	}
	return l, nil
}

// Addr returns the advertised address, which Raft stores in its
// configuration.
func (l *RaftLayer) Addr() net.Addr { return l.advertise }

// Accept waits for the next Raft stream from a peer.
func (l *RaftLayer) Accept() (net.Conn, error) {
	c, err := l.ln.Accept()
	if err != nil {
		return nil, err
	}
	return l.track(c, true)
}

// Dial opens a Raft stream to a peer. For an address from RaftTarget, the
// stream names the server it is meant for, and Dial returns an error
// wrapping ErrWrongServer if another server holds the address.
func (l *RaftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	addr, id, targeted := splitTarget(address)
	if targeted {
		c, err := dialKind(ctx, l.dialer, addr, KindRaftTo)
		if err != nil {
			return nil, err
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetDeadline(dl)
		}
		err = confirmTarget(c, addr, id)
		if err == nil {
			_ = c.SetDeadline(time.Time{})
			return l.track(c, false)
		}
		c.Close()
		if !errors.Is(err, errOldPeer) {
			return nil, err
		}
		// A build without KindRaftTo: an unchecked stream, as it takes.
	}
	c, err := dialKind(ctx, l.dialer, addr, KindRaft)
	if err != nil {
		return nil, err
	}
	return l.track(c, false)
}

// Close stops accepting and closes every open Raft stream.
func (l *RaftLayer) Close() error {
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.conns = make(map[*trackedConn]struct{})
	l.mu.Unlock()
	err := l.ln.Close()
	for c := range conns {
		c.Conn.Close()
	}
	return err
}

func (l *RaftLayer) track(c net.Conn, inbound bool) (net.Conn, error) {
	tc := &trackedConn{Conn: c, layer: l, inbound: inbound}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, ErrClosed
	}
	l.conns[tc] = struct{}{}
	return tc, nil
}

func (l *RaftLayer) forget(tc *trackedConn) {
	l.mu.Lock()
	delete(l.conns, tc)
	l.mu.Unlock()
}

// closing reports whether Close has begun.
func (l *RaftLayer) closing() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// trackedConn removes itself from its layer when closed.
type trackedConn struct {
	net.Conn
	layer   *RaftLayer
	inbound bool
	once    sync.Once
}

// Read reads from the stream. Once the layer is closed, a read cut short by
// that close reports io.EOF, the end of the stream, rather than "use of
// closed network connection": raft.NetworkTransport logs every read error
// of an incoming stream except io.EOF at Error, and a node closing its own
// streams on a graceful shutdown is not an error.
//
// An inbound stream must deliver something every raftIdleTimeout; Raft sets
// no read deadline of its own on the streams it accepts, so without this a
// peer that connects and goes silent would hold a goroutine forever. The
// timeout also reports io.EOF: the dialing side's stale pooled stream is
// not an error either, and Raft redials.
func (c *trackedConn) Read(p []byte) (int, error) {
	if c.inbound {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.layer.idleAfter))
	}
	n, err := c.Conn.Read(p)
	if err != nil && errors.Is(err, net.ErrClosed) && c.layer.closing() {
		err = io.EOF
	}
	var ne net.Error
	if err != nil && c.inbound && errors.As(err, &ne) && ne.Timeout() {
		c.layer.idle.log("remote", c.RemoteAddr(), "idle", c.layer.idleAfter)
		err = io.EOF
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.layer.forget(c) })
	return c.Conn.Close()
}
