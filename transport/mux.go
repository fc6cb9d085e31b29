package transport

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Kind is the first byte of every connection and names its protocol.
type Kind byte

const (
	// KindRaft marks a connection carrying Raft's own protocol.
	KindRaft Kind = 1
	// KindRPC marks a connection carrying Interlock's request/response RPC.
	KindRPC Kind = 2
	// KindRaftTo marks a Raft connection that first names the Raft server
	// it is meant for, which the accepting node checks (raftto.go).
	KindRaftTo Kind = 3
)

// String returns the kind's name, for logs.
func (k Kind) String() string {
	switch k {
	case KindRaft:
		return "raft"
	case KindRPC:
		return "rpc"
	case KindRaftTo:
		return "raft-to"
	default:
		return fmt.Sprintf("kind(%d)", byte(k))
	}
}

var (
	// ErrClosed is returned by Accept after the Mux or sub-listener closed.
	ErrClosed = errors.New("transport: listener closed")

	// ErrKindTaken means Listen was called twice for the same Kind.
	ErrKindTaken = errors.New("transport: kind already has a listener")

	// ErrWrongServer means the process at a Raft server's address is
	// another Raft server, as after the address was reused by a node of
	// another cluster or a new incarnation of a memory-only node: the
	// stream was refused before any Raft message went over it.
	ErrWrongServer = errors.New("transport: address is served by another Raft server")
)

// Mux demultiplexes one listener by each connection's first byte. Listen
// must be called for every Kind before Serve; all methods are safe for
// concurrent use after that.
//
// It holds at most maxConns connections at once: each accepted connection
// takes a slot that its Close gives back, and a connection over the cap is
// closed on accept. A connection that sends no kind byte within
// handshakeTimeout, or an unknown one, is closed. Each refusal is logged at
// most once per logEvery.
type Mux struct {
	ln     net.Listener
	logger hclog.Logger
	slots  chan struct{} // one token per open connection

	handshake time.Duration // handshakeTimeout; a field so tests can shorten it

	overCap     *throttledLog
	noKind      *throttledLog
	unknownKind *throttledLog

	// tlsConfig, if set by UseTLS, wraps every connection (tls.go).
	tlsConfig  *tls.Config
	tlsRefused *tlsRefusals

	mu   sync.Mutex
	subs map[Kind]*subListener
	// admit holds, for a kind that needs it, the check a connection of
	// that kind passes, within the handshake deadline, before its
	// listener gets it; an error closes the connection.
	admit  map[Kind]func(net.Conn) error
	closed bool
	wg     sync.WaitGroup
}

// NewMux wraps ln. To encrypt, pass tls.NewListener(ln, cfg).
func NewMux(ln net.Listener, logger hclog.Logger) *Mux {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Mux{
		ln:          ln,
		logger:      logger,
		slots:       make(chan struct{}, maxConns),
		handshake:   handshakeTimeout,
		overCap:     newThrottledLog(logger, hclog.Warn, "refusing connections over the per-node cap"),
		noKind:      newThrottledLog(logger, hclog.Debug, "connection closed before its kind byte"),
		unknownKind: newThrottledLog(logger, hclog.Warn, "dropping connection of unknown kind"),
		subs:        make(map[Kind]*subListener),
		admit:       make(map[Kind]func(net.Conn) error),
	}
}

// Addr returns the address the Mux listens on.
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

// Listen returns the listener that receives connections of one kind, with
// the kind byte already consumed.
func (m *Mux) Listen(k Kind) (net.Listener, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.subs[k]; ok {
		return nil, fmt.Errorf("%w: %s", ErrKindTaken, k)
	}
	s := &subListener{kind: k, addr: m.ln.Addr(), conns: make(chan net.Conn), done: make(chan struct{})}
	m.subs[k] = s
	return s, nil
}

// listenAlso hands connections of kind extra to the listener of kind k,
// which Listen returned, once admit accepted them.
func (m *Mux) listenAlso(k, extra Kind, admit func(net.Conn) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.subs[extra]; ok {
		return fmt.Errorf("%w: %s", ErrKindTaken, extra)
	}
	s, ok := m.subs[k]
	if !ok {
		return fmt.Errorf("transport: no listener for %s to take %s", k, extra)
	}
	m.subs[extra] = s
	m.admit[extra] = admit
	return nil
}

// Serve accepts connections until Close. It returns nil after Close and the
// accept error otherwise.
func (m *Mux) Serve() error {
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			m.mu.Lock()
			closed := m.closed
			m.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("mux accept: %w", err)
		}
		// Add under the lock that Close takes to set closed, so every Add
		// happens before Close's Wait, or sees closed and stops.
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			conn.Close()
			return nil
		}
		m.wg.Add(1)
		m.mu.Unlock()
		select {
		case m.slots <- struct{}{}:
		default:
			m.overCap.log("remote", conn.RemoteAddr(), "cap", cap(m.slots))
			conn.Close()
			m.wg.Done()
			continue
		}
		lc := &limitedConn{Conn: conn, slots: m.slots}
		go func() {
			defer m.wg.Done()
			m.route(lc)
		}()
	}
}

func (m *Mux) route(conn net.Conn) {
	m.mu.Lock()
	cfg, refused := m.tlsConfig, m.tlsRefused
	m.mu.Unlock()
	if cfg != nil {
		if conn = m.tlsHandshake(conn, cfg, refused); conn == nil {
			return
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(m.handshake))
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		m.noKind.log("remote", conn.RemoteAddr(), "error", err)
		conn.Close()
		return
	}
	m.mu.Lock()
	s, admit := m.subs[Kind(b[0])], m.admit[Kind(b[0])]
	m.mu.Unlock()
	if s == nil {
		m.unknownKind.log("remote", conn.RemoteAddr(), "kind", Kind(b[0]))
		conn.Close()
		return
	}
	if admit != nil {
		_ = conn.SetWriteDeadline(time.Now().Add(m.handshake))
		if err := admit(conn); err != nil {
			conn.Close()
			return
		}
		_ = conn.SetWriteDeadline(time.Time{})
	}
	_ = conn.SetReadDeadline(time.Time{})
	select {
	case s.conns <- conn:
	case <-s.done:
		conn.Close()
	}
}

// Close stops accepting, closes every sub-listener and waits for routing
// goroutines to finish. Connections already handed out are the receiver's
// to close.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	subs := m.subs
	m.mu.Unlock()
	err := m.ln.Close()
	for _, s := range subs {
		s.Close()
	}
	m.wg.Wait()
	return err
}

// subListener is the net.Listener for one Kind.
type subListener struct {
	kind  Kind
	addr  net.Addr
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func (s *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		return nil, fmt.Errorf("%w: %s", ErrClosed, s.kind)
	}
}

func (s *subListener) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

func (s *subListener) Addr() net.Addr { return s.addr }

// limitedConn holds one of its Mux's connection slots until closed.
type limitedConn struct {
	net.Conn
	slots chan struct{}
	once  sync.Once
}

// Close closes the connection and gives its slot back, once.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { <-c.slots })
	return err
}

// NetConn returns the accepted connection underneath, as tls.Conn's
// method of the same name does.
func (c *limitedConn) NetConn() net.Conn { return c.Conn }
