package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// ErrUnauthorizedPeer is what a TLS VerifyConnection hook wraps when a peer
// holds a valid certificate that does not entitle it to this cluster, such
// as one issued for another cluster's name. The refusal logs name it.
var ErrUnauthorizedPeer = errors.New("transport: peer certificate is not authorized for this cluster")

// UseTLS makes the Mux run a TLS server handshake with cfg on every
// accepted connection before it reads the kind byte, so both Raft streams
// and RPCs are encrypted and authenticated. A connection whose handshake
// fails is closed, and the refusal logged at Warn once per logEvery per
// cause: a plaintext peer, a certificate from an unknown authority, an
// expired certificate, an unauthorized one, or any other failure. The
// handshake must finish within the kind byte's handshakeTimeout. Call it
// before Serve; it is not safe to call concurrently with Serve.
func (m *Mux) UseTLS(cfg *tls.Config) {
	m.tlsConfig = cfg
	m.tlsRefused = newTLSRefusals(m.logger, "refusing inbound connection")
}

// tlsHandshake runs the server side of TLS on conn. It returns the encrypted
// connection, or nil after closing conn and logging why.
func (m *Mux) tlsHandshake(conn net.Conn) net.Conn {
	tc := tls.Server(conn, m.tlsConfig)
	ctx, cancel := context.WithTimeout(context.Background(), m.handshake)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		m.tlsRefused.log(conn.RemoteAddr(), err)
		tc.Close()
		return nil
	}
	return tc
}

// TLSDialer opens connections through another Dialer and runs a TLS client
// handshake on each, with the configuration that its config function
// returns at that moment; a function rather than a fixed *tls.Config lets
// certificates and trusted authorities change without a restart. A failed
// handshake is logged at Warn once per logEvery per cause, as the Mux logs
// inbound refusals. It is safe for concurrent use.
type TLSDialer struct {
	dialer  Dialer
	config  func() (*tls.Config, error)
	refused *tlsRefusals
}

// NewTLSDialer returns a TLSDialer over d (a *net.Dialer if nil) that takes
// each connection's client configuration from config.
func NewTLSDialer(d Dialer, config func() (*tls.Config, error), logger hclog.Logger) *TLSDialer {
	if d == nil {
		d = &net.Dialer{}
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &TLSDialer{dialer: d, config: config, refused: newTLSRefusals(logger, "refusing peer")}
}

// DialContext dials address and completes the TLS handshake within ctx.
func (d *TLSDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	cfg, err := d.config()
	if err != nil {
		return nil, fmt.Errorf("tls configuration: %w", err)
	}
	conn, err := d.dialer.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		if ctx.Err() == nil {
			d.refused.log(conn.RemoteAddr(), err)
		}
		tc.Close()
		return nil, fmt.Errorf("tls handshake with %s: %w", address, err)
	}
	return tc, nil
}

// tlsRefusals logs failed handshakes, one throttled line per cause, so a
// peer that retries in a loop costs one line every logEvery and each cause
// still shows up on its own.
type tlsRefusals struct {
	plaintext, noCert, unknownCA, expired, unauthorized, other, closed *throttledLog
}

func newTLSRefusals(logger hclog.Logger, prefix string) *tlsRefusals {
	l := func(level hclog.Level, why string) *throttledLog {
		return newThrottledLog(logger, level, prefix+": "+why)
	}
	return &tlsRefusals{
		plaintext:    l(hclog.Warn, "peer does not speak TLS (a node without Config.TLS?)"),
		noCert:       l(hclog.Warn, "peer sent no certificate (one signed by a trusted CA is required)"),
		unknownCA:    l(hclog.Warn, "peer certificate is not signed by a trusted CA (TLS.CAFile)"),
		expired:      l(hclog.Warn, "peer certificate has expired or is not yet valid"),
		unauthorized: l(hclog.Warn, "peer certificate is for another cluster (its names do not match this cluster's TLS server name)"),
		other:        l(hclog.Warn, "TLS handshake failed"),
		// A peer that hangs up mid-handshake is usually a port check or a
		// node that refused our certificate and logged why on its side.
		closed: l(hclog.Debug, "peer closed the connection during the TLS handshake"),
	}
}

func (r *tlsRefusals) log(remote net.Addr, err error) {
	var (
		rec     tls.RecordHeaderError
		unknown x509.UnknownAuthorityError
		invalid x509.CertificateInvalidError
		host    x509.HostnameError
	)
	switch {
	case errors.As(err, &rec):
		r.plaintext.log("remote", remote, "error", err)
	case strings.Contains(err.Error(), "didn't provide a certificate"):
		// crypto/tls has no exported error for it.
		r.noCert.log("remote", remote, "error", err)
	case errors.As(err, &unknown):
		r.unknownCA.log("remote", remote, "error", err)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		r.expired.log("remote", remote, "error", err)
	case errors.Is(err, ErrUnauthorizedPeer) || errors.As(err, &host):
		r.unauthorized.log("remote", remote, "error", err)
	case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, context.DeadlineExceeded):
		r.closed.log("remote", remote, "error", err)
	default:
		r.other.log("remote", remote, "error", err)
	}
}
