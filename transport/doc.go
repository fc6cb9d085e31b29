// Package transport gives each Interlock node one TCP port that carries
// both Raft's streams and the node-to-node RPC that followers use to forward
// proposals to the leader.
//
// The first byte a dialer writes on a new connection picks its handler (see
// Kind). A Mux accepts on the one listener, reads that byte and hands the
// connection to the matching sub-listener, so Raft's NetworkTransport and the
// RPC server each see an ordinary net.Listener. A Raft stream dialed for a
// named server (RaftTarget) first carries that server's ID, and a node
// serving another ID refuses it (see raftto.go).
//
// Encryption is a wrapping concern: the Mux takes any net.Listener, and every
// outbound connection goes through a Dialer, so a *tls.Config can wrap both
// (tls.NewListener and tls.Dialer) without changing anything above.
package transport
