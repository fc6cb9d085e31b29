package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Method names an RPC. The cluster package defines the values.
type Method byte

// frameChunk is the most a frame's buffer grows ahead of the bytes that
// arrived: a body is read in steps of at most this size, so a length prefix
// alone reserves nothing.
const frameChunk = 64 << 10

var (
	// errFrameTooLarge is the cause when a frame's length prefix exceeds maxFrame.
	errFrameTooLarge = errors.New("frame exceeds the size limit")
	// errNoAnswerYet marks a call that sent its whole request and ended
	// before the first byte of the answer arrived: the connection is still
	// usable once that answer has been read (Client.drain).
	errNoAnswerYet = errors.New("no answer yet")
)

// Handler serves one RPC. It is called concurrently, once per request, and
// the ctx ends when the server closes.
type Handler func(ctx context.Context, m Method, req []byte) ([]byte, error)

// RemoteError is an error returned by the far side of an RPC. Code lets the
// caller map it back to a sentinel error of its own package.
type RemoteError struct {
	Code    uint16
	Message string
}

func (e *RemoteError) Error() string { return e.Message }

// ErrorCoder turns a handler's error into a wire code. Zero means "no
// specific code".
type ErrorCoder func(error) uint16

// Server answers KindRPC connections from a Mux. Each connection carries
// requests one at a time; clients open more connections for concurrency.
//
// A connection may sit idle between requests for rpcIdleTimeout; once a
// request's first byte arrived, the rest must arrive within frameTimeout,
// and its body may be at most maxFrame bytes. A connection that breaks a
// limit or sends a malformed frame is closed, logged at most once per
// logEvery.
type Server struct {
	ln      net.Listener
	handler Handler
	coder   ErrorCoder
	logger  hclog.Logger
	garbage *throttledLog

	// The limits, fields so tests can shorten them.
	frameTimeout, idleTimeout time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

// NewServer registers the RPC listener on m. Call Serve to start it.
func NewServer(m *Mux, h Handler, coder ErrorCoder, logger hclog.Logger) (*Server, error) {
	ln, err := m.Listen(KindRPC)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if coder == nil {
		coder = func(error) uint16 { return 0 }
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		ln: ln, handler: h, coder: coder, logger: logger,
		garbage:      newThrottledLog(logger, hclog.Warn, "closing rpc connection that sent a malformed or stalled frame"),
		frameTimeout: frameTimeout, idleTimeout: rpcIdleTimeout,
		ctx: ctx, cancel: cancel, conns: make(map[net.Conn]struct{}),
	}, nil
}

// Serve accepts until Close.
func (s *Server) Serve() {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			conn.Close()
			return
		}
		s.conns[conn] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(conn)
	}
}

// Close stops the server, closes open connections and waits for handlers.
func (s *Server) Close() error {
	s.cancel()
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) serveConn(conn net.Conn) {
	defer func() {
		conn.Close()
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		s.wg.Done()
	}()
	r := bufio.NewReader(conn)
	var w *bufio.Writer
	for {
		// Between requests the connection may idle in a client's pool.
		_ = conn.SetReadDeadline(time.Now().Add(s.idleTimeout))
		if _, err := r.Peek(1); err != nil {
			if !errors.Is(err, io.EOF) && s.ctx.Err() == nil {
				s.logger.Debug("rpc connection ended", "remote", conn.RemoteAddr(), "error", err)
			}
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(s.frameTimeout))
		m, req, err := readRequest(r)
		if err != nil {
			if s.ctx.Err() == nil {
				s.garbage.log("remote", conn.RemoteAddr(), "error", err)
			}
			return
		}
		resp, herr := s.handler(s.ctx, m, req)
		if w == nil {
			w = bufio.NewWriter(conn)
		}
		_ = conn.SetWriteDeadline(time.Now().Add(s.frameTimeout))
		if herr != nil {
			err = writeError(w, s.coder(herr), herr.Error())
		} else {
			err = writeFrame(w, 0, resp)
		}
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			return
		}
	}
}

// Client makes RPCs to other nodes, keeping idle connections per address.
// It is safe for concurrent use.
type Client struct {
	dialer  Dialer
	maxIdle int

	mu     sync.Mutex
	idle   map[string][]*clientConn
	closed bool
	// draining holds the connections whose caller gave up while the
	// answer was still to come; a goroutine per connection, counted in
	// drains, reads the answer and pools the connection again.
	draining map[*clientConn]struct{}
	drains   sync.WaitGroup
}

type clientConn struct {
	net.Conn
	r *bufio.Reader
	w *bufio.Writer

	idleSince time.Time // when put back in the pool
}

// NewClient returns a client that dials through d (a *net.Dialer if nil).
func NewClient(d Dialer) *Client {
	if d == nil {
		d = &net.Dialer{}
	}
	return &Client{dialer: d, maxIdle: 8, idle: make(map[string][]*clientConn), draining: make(map[*clientConn]struct{})}
}

// Call sends one request and waits for its response or ctx's end. A
// *RemoteError means the far side answered with an error.
func (c *Client) Call(ctx context.Context, addr string, m Method, req []byte) ([]byte, error) {
	cc, err := c.get(ctx, addr)
	if err != nil {
		return nil, err
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Time{}
	}
	_ = cc.SetDeadline(dl)
	// A ctx cancelled without a deadline must still interrupt the read.
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = cc.SetDeadline(time.Unix(1, 0))
		close(fired)
	})
	resp, err := roundTrip(cc, m, req)
	stopped := stop()
	var remote *RemoteError
	if err != nil && !errors.As(err, &remote) {
		cerr := ctx.Err()
		if errors.Is(err, errNoAnswerYet) && (cerr != nil || (ok && !time.Now().Before(dl))) {
			// The request went out whole and the caller gave up before any
			// byte of the answer: read it in the background and reuse the
			// connection, instead of paying a new dial for the next call.
			if stopped {
				fired = nil // the deadline is the ctx's own; nothing will change it
			}
			c.drain(addr, cc, fired)
		} else {
			cc.Close()
		}
		if cerr == nil && ok && !time.Now().Before(dl) {
			// The connection's deadline is the ctx's own, and the read can
			// time out a moment before the ctx's timer marks it done.
			cerr = context.DeadlineExceeded
		}
		if cerr != nil {
			return nil, fmt.Errorf("rpc %d to %s: %w", m, addr, cerr)
		}
		return nil, fmt.Errorf("rpc %d to %s: %w", m, addr, err)
	}
	if stopped {
		c.put(addr, cc)
	} else {
		cc.Close()
	}
	return resp, err
}

func roundTrip(cc *clientConn, m Method, req []byte) ([]byte, error) {
	if err := writeFrame(cc.w, byte(m), req); err != nil {
		return nil, err
	}
	if err := cc.w.Flush(); err != nil {
		return nil, err
	}
	// Wait for the answer's first byte without consuming it, so that a
	// timeout here leaves the stream at a frame boundary (see drain).
	if _, err := cc.r.Peek(1); err != nil {
		return nil, fmt.Errorf("%w: %w", errNoAnswerYet, err)
	}
	status, body, err := readFrame(cc.r)
	if err != nil {
		return nil, err
	}
	if status != 0 {
		return nil, decodeError(body)
	}
	return body, nil
}

func (c *Client) get(ctx context.Context, addr string) (*clientConn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	// Take the most recently used connection; close any idle so long that
	// the server may be about to close it (rpcIdleTimeout).
	var stale []*clientConn
	var cc *clientConn
	for list := c.idle[addr]; len(list) > 0 && cc == nil; list = c.idle[addr] {
		last := list[len(list)-1]
		c.idle[addr] = list[:len(list)-1]
		if time.Since(last.idleSince) > clientIdleTimeout {
			stale = append(stale, last)
			continue
		}
		cc = last
	}
	c.mu.Unlock()
	for _, s := range stale {
		s.Close()
	}
	if cc != nil {
		return cc, nil
	}
	conn, err := dialKind(ctx, c.dialer, addr, KindRPC)
	if err != nil {
		return nil, err
	}
	return &clientConn{Conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn)}, nil
}

func (c *Client) put(addr string, cc *clientConn) {
	_ = cc.SetDeadline(time.Time{})
	cc.idleSince = time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.idle[addr]) >= c.maxIdle {
		cc.Close()
		return
	}
	c.idle[addr] = append(c.idle[addr], cc)
}

// drain reads, in the background, the answer to a call whose caller gave
// up, and then pools cc again; if the answer does not come within
// drainTimeout, or cannot be read, cc is closed. fired, if not nil, is
// closed once the caller's ctx has set cc's deadline, which must happen
// before drain sets its own.
func (c *Client) drain(addr string, cc *clientConn, fired <-chan struct{}) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cc.Close()
		return
	}
	c.draining[cc] = struct{}{}
	c.drains.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.drains.Done()
		if fired != nil {
			<-fired
		}
		_ = cc.SetDeadline(time.Now().Add(drainTimeout))
		_, _, err := readFrame(cc.r)
		c.mu.Lock()
		delete(c.draining, cc)
		c.mu.Unlock()
		if err != nil {
			cc.Close()
			return
		}
		c.put(addr, cc)
	}()
}

// Close closes every idle connection and every one still waiting for the
// answer to an abandoned call, and returns once those are done; later
// Calls fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	for _, list := range c.idle {
		for _, cc := range list {
			cc.Close()
		}
	}
	c.idle = nil
	for cc := range c.draining {
		cc.Close()
	}
	c.mu.Unlock()
	c.drains.Wait()
	return nil
}

// A frame is a tag byte (method for requests, status for responses), a
// uvarint length and the body.
func writeFrame(w *bufio.Writer, tag byte, body []byte) error {
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = tag
	n := binary.PutUvarint(hdr[1:], uint64(len(body)))
	if _, err := w.Write(hdr[:1+n]); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

func readFrame(r *bufio.Reader) (byte, []byte, error) {
	tag, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the tag came, so the frame is cut short
		}
		return 0, nil, fmt.Errorf("read frame length: %w", err)
	}
	if n > maxFrame {
		return 0, nil, fmt.Errorf("%w: %d bytes announced, limit %d", errFrameTooLarge, n, maxFrame)
	}
	// Grow the buffer as bytes arrive, never to the announced length up
	// front: a peer that announces maxFrame and sends nothing costs nothing.
	var buf bytes.Buffer
	for remaining := int64(n); remaining > 0; {
		step := min(remaining, frameChunk)
		got, err := io.CopyN(&buf, r, step)
		remaining -= got
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, fmt.Errorf("read frame body (%d of %d bytes): %w", uint64(buf.Len()), n, err)
		}
	}
	return tag, buf.Bytes(), nil
}

func readRequest(r *bufio.Reader) (Method, []byte, error) {
	tag, body, err := readFrame(r)
	return Method(tag), body, err
}

func writeError(w *bufio.Writer, code uint16, msg string) error {
	body := binary.BigEndian.AppendUint16(nil, code)
	body = append(body, msg...)
	return writeFrame(w, 1, body)
}

func decodeError(body []byte) error {
	if len(body) < 2 {
		return &RemoteError{Message: "malformed remote error"}
	}
	return &RemoteError{Code: binary.BigEndian.Uint16(body), Message: string(body[2:])}
}
