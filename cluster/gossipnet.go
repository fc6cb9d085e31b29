package cluster

import (
	"context"
	"fmt"
	"log"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// gossipNet is memberlist's own network transport, except that its stream
// dials end when the node stops. memberlist's Join cannot be cancelled: a
// join of an address that drops packets (a partition made with iptables
// DROP rules) would otherwise hold the node's shutdown for memberlist's
// whole TCPTimeout. The reconnect loop (reconnect.go) and Start's join
// rely on it. Safe for concurrent use, like the transport it wraps.
type gossipNet struct {
	*memberlist.NetTransport
	// stopped ends when the node stops.
	stopped context.Context
}

// newGossipNet binds memberlist's network transport as memberlist itself
// would, and sets it as mc's Transport. A BindPort of 0 takes a free port,
// retried a few times because TCP and UDP must both get it.
func newGossipNet(mc *memberlist.Config, logger *log.Logger, stopped context.Context) (*gossipNet, error) {
	nc := &memberlist.NetTransportConfig{
		BindAddrs: []string{mc.BindAddr},
		BindPort:  mc.BindPort,
		Logger:    logger,
	}
	tries := 1
	if mc.BindPort == 0 {
		tries = 10
	}
	var nt *memberlist.NetTransport
	var err error
	for range tries {
		if nt, err = memberlist.NewNetTransport(nc); err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bind gossip transport: %w", err)
	}
	if mc.BindPort == 0 {
		mc.BindPort = nt.GetAutoBindPort()
		if mc.AdvertisePort == 0 {
			mc.AdvertisePort = mc.BindPort
		}
	}
	g := &gossipNet{NetTransport: nt, stopped: stopped}
	mc.Transport = g
	return g, nil
}

// DialTimeout dials addr as memberlist's transport does, but gives up when
// the node stops.
func (g *gossipNet) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.DialContext(g.stopped, "tcp", addr)
}

// DialAddressTimeout is DialTimeout for memberlist's node-aware calls.
func (g *gossipNet) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return g.DialTimeout(a.Addr, timeout)
}
