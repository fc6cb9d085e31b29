package transport

import (
	"context"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// RaftLayer is the raft.StreamLayer over a Mux: it accepts KindRaft
// connections and dials peers with the kind byte already sent. It is safe
// for concurrent use.
type RaftLayer struct {
	net.Listener
	advertise net.Addr
	dialer    Dialer
}

var _ raft.StreamLayer = (*RaftLayer)(nil)

// NewRaftLayer returns the Raft stream layer of a Mux. advertise is the
// address peers reach this node at; it must not be an unspecified address.
func NewRaftLayer(m *Mux, advertise net.Addr, d Dialer) (*RaftLayer, error) {
	ln, err := m.Listen(KindRaft)
	if err != nil {
		return nil, err
	}
	if d == nil {
		d = &net.Dialer{}
	}
	return &RaftLayer{Listener: ln, advertise: advertise, dialer: d}, nil
}

// Addr returns the advertised address, which Raft stores in its
// configuration.
func (l *RaftLayer) Addr() net.Addr { return l.advertise }

// Dial opens a Raft stream to a peer.
func (l *RaftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return dialKind(ctx, l.dialer, string(address), KindRaft)
}
