package cluster

import (
	"github.com/interlockraft/interlock/transport"
)

// secureTransport turns on TLS on the node's listener when Config.TLS is
// set and returns the dialer for every connection to other nodes' Raft/RPC
// port: Config.RaftDialer, wrapped in TLS when it is on.
func (n *Node) secureTransport() (transport.Dialer, error) {
	if n.cfg.TLS == nil {
		return n.cfg.RaftDialer, nil
	}
	logger := n.logger.Named("tls")
	src, err := newTLSSource(n.cfg, logger)
	if err != nil {
		return nil, err
	}
	n.tlsOn = true
	n.mux.UseTLS(src.server())
	return transport.NewTLSDialer(n.cfg.RaftDialer, src.client, logger), nil
}
