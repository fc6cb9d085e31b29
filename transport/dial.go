package transport

import (
	"context"
	"fmt"
	"net"
	"time"
)

// Dialer opens outbound connections. *net.Dialer and *tls.Dialer both
// satisfy it, which is how TLS slots in.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// dialKind opens a connection and announces its kind.
func dialKind(ctx context.Context, d Dialer, addr string, k Kind) (net.Conn, error) {
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s for %s: %w", addr, k, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetWriteDeadline(dl)
	}
	if _, err := conn.Write([]byte{byte(k)}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("announce %s to %s: %w", k, addr, err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return conn, nil
}
