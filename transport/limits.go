package transport

import "time"

// Limits on what a peer can make a node hold. Every connection to the one
// TCP port passes these before any of its bytes reach Raft or a handler; a
// connection that breaks one is closed and the event logged at most once per
// logEvery per kind of fault, so garbage cannot flood the log either.
const (
	// maxConns caps the connections a Mux holds open at once, across both
	// kinds. Raft keeps a few streams per peer and the RPC client pools up
	// to maxIdle connections per peer, so a cluster of a few dozen nodes
	// stays far below it. Over the cap, a new connection is closed on
	// accept.
	maxConns = 1024

	// handshakeTimeout bounds how long an accepted connection may take to
	// send its kind byte, so a stray client cannot pin a goroutine forever.
	handshakeTimeout = 5 * time.Second

	// maxFrame bounds one RPC request or response body, so a corrupt or
	// hostile length prefix is refused outright. A claim batch for 50,000
	// jobs is a few MiB.
	maxFrame = 64 << 20

	// frameTimeout bounds how long the rest of an RPC frame may take once
	// its first byte arrived, and how long writing a response may take. A
	// peer that announces a frame and trickles it (slowloris) is cut off
	// here, whatever the rate: the deadline is set once per frame, not per
	// read.
	frameTimeout = 10 * time.Second

	// rpcIdleTimeout is how long the server waits for the next request on
	// an RPC connection. Clients keep idle connections pooled, and drop
	// them after clientIdleTimeout, well before this, so the server never
	// closes a connection a client is about to reuse.
	rpcIdleTimeout = 2 * time.Minute

	// clientIdleTimeout is how long a pooled RPC connection may sit unused
	// before the client closes it instead of reusing it.
	clientIdleTimeout = rpcIdleTimeout / 2

	// drainTimeout is how long a client keeps reading for the answer to a
	// call whose caller gave up (its ctx ended) before the answer came. The
	// answer, once read, frees the connection for the next call, which
	// then needs no new dial: with TLS a dial is a full handshake, and a
	// node whose calls time out because it is slow would otherwise pay one
	// for every call after each timeout, when it can least afford it.
	drainTimeout = 10 * time.Second

	// raftIdleTimeout closes an inbound Raft stream on which nothing at all
	// arrived for this long. A leader's streams carry a heartbeat several
	// times a second; a stream idle this long is a peer's stale pooled
	// connection or a connection that never speaks, and Raft redials.
	raftIdleTimeout = 5 * time.Minute

	// logEvery is the most often each kind of refusal is logged; the line
	// carries how many were suppressed since the last one.
	logEvery = 10 * time.Second
)
