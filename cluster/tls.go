package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/transport"
)

// TLSConfig turns on mutual TLS for the Raft/RPC port (Config.TLS): every
// connection between nodes, Raft's streams and forwarded proposals alike,
// is encrypted, and both ends must present a certificate that a trusted CA
// signed for this cluster's server name.
//
// Give either the three files or Config, not both. With files, which is
// what most deployments want, the CA and the node's certificate and key
// are re-read when they change on disk, so renewed certificates and an
// extended CA bundle take effect without a restart (see docs/security.md).
//
// The certificate rules, checked by Start:
//   - Every node's certificate must carry the DNS name ServerName (default
//     "server.<ClusterName>.interlock") as a Subject Alternative Name.
//     Peers dial each other by IP address but verify this name, as Consul's
//     verify_server_hostname does, so certificates need no IP SANs and a
//     pod or container may change address freely.
//   - Its extended key usage must allow both server and client
//     authentication (or list none), since each node is both.
//   - Only nodes whose certificates carry this cluster's server name may
//     connect at all, so a certificate of the same CA issued for another
//     cluster can neither send Raft messages nor forward proposals.
//
// A TLSConfig is read by Start and must not be modified afterwards.
type TLSConfig struct {
	// CAFile is a PEM file of the CA certificates that sign node
	// certificates. To rotate the CA, list the old and the new CA here on
	// every node first.
	CAFile string

	// CertFile is a PEM file with this node's certificate, optionally
	// followed by intermediate certificates.
	CertFile string

	// KeyFile is a PEM file with the private key of CertFile.
	KeyFile string

	// ServerName is the name every node's certificate carries and every
	// peer verifies. Default "server.<ClusterName>.interlock", which
	// requires ClusterName to be a valid DNS label sequence.
	ServerName string

	// Config, instead of the files, supplies certificates and CAs from an
	// application's own source (a secrets manager, a SPIFFE workload API).
	// It must provide a certificate (Certificates, GetCertificate or
	// GetClientCertificate) and the CA pool (RootCAs, also used as
	// ClientCAs when that is nil). Interlock uses a copy in which client
	// certificates are always required and verified, the ServerName check
	// above applies, and the minimum version is TLS 1.2; a VerifyConnection
	// of its own runs after that check.
	Config *tls.Config
}

// tlsMinVersion is the oldest TLS version a node speaks.
const tlsMinVersion = tls.VersionTLS12

// dnsName is what a derived server name's ClusterName must look like.
var dnsName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// DefaultTLSServerName returns the name that node certificates must carry
// for a cluster called clusterName when TLSConfig.ServerName is empty.
// It is a pure function, safe for concurrent use.
func DefaultTLSServerName(clusterName string) string {
	if clusterName == "" {
		clusterName = DefaultClusterName
	}
	return "server." + clusterName + ".interlock"
}

// tlsSource hands out the current server and client configurations.
type tlsSource interface {
	server() *tls.Config
	client() (*tls.Config, error)
}

// validateTLS checks Config.TLS's shape; the files are read by newTLSSource.
func (c Config) validateTLS() error {
	t := c.TLS
	if t == nil {
		return nil
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	files := t.CAFile != "" || t.CertFile != "" || t.KeyFile != ""
	switch {
	case t.Config != nil && files:
		return bad("TLS.Config and TLS.CAFile/CertFile/KeyFile are both set; give either the files or a *tls.Config")
	case t.Config != nil:
		cfg := t.Config
		if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetClientCertificate == nil {
			return bad("TLS.Config has no certificate; set Certificates or GetCertificate and GetClientCertificate")
		}
		if cfg.RootCAs == nil {
			return bad("TLS.Config.RootCAs is nil, which would trust the system's public CAs; set it to the pool of the CA that signs node certificates")
		}
		if cfg.InsecureSkipVerify {
			return bad("TLS.Config.InsecureSkipVerify is set; peers must be verified, so unset it")
		}
	default:
		for _, f := range []struct{ name, value string }{{"CAFile", t.CAFile}, {"CertFile", t.CertFile}, {"KeyFile", t.KeyFile}} {
			if f.value == "" {
				return bad("TLS.%s is empty; set TLS.CAFile, TLS.CertFile and TLS.KeyFile (PEM files), or TLS.Config", f.name)
			}
		}
	}
	if t.ServerName == "" && !dnsName.MatchString(c.ClusterName) {
		return bad("ClusterName %q cannot form the TLS server name %q; use letters, digits, '-' and '.' in ClusterName, or set TLS.ServerName", c.ClusterName, DefaultTLSServerName(c.ClusterName))
	}
	return nil
}

// tlsServerName returns the name certificates are verified against.
func (c Config) tlsServerName() string {
	if c.TLS != nil && c.TLS.ServerName != "" {
		return c.TLS.ServerName
	}
	return DefaultTLSServerName(c.ClusterName)
}

// newTLSSource builds the node's TLS source, reading and checking the files
// once so that Start reports a bad certificate at once, naming the field.
func newTLSSource(c Config, logger hclog.Logger) (tlsSource, error) {
	name := c.tlsServerName()
	if c.TLS.Config != nil {
		return newStaticTLS(c.TLS.Config, name), nil
	}
	return newTLSStore(c.TLS.CAFile, c.TLS.CertFile, c.TLS.KeyFile, name, logger)
}

// verifyPeerName is the authorization check both sides run after the
// chain is verified: the peer's certificate must carry this cluster's
// server name. On the client side the standard ServerName check already
// did it; the server side has no such check of its own for client
// certificates, so this is what keeps another cluster's nodes out.
func verifyPeerName(name string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("%w: no certificate", transport.ErrUnauthorizedPeer)
		}
		leaf := cs.PeerCertificates[0]
		if err := leaf.VerifyHostname(name); err != nil {
			return fmt.Errorf("%w: certificate %q has DNS names %v, not %q", transport.ErrUnauthorizedPeer, leaf.Subject.CommonName, leaf.DNSNames, name)
		}
		return nil
	}
}

// staticTLS is a TLSConfig.Config, hardened, behind the tlsSource interface.
type staticTLS struct {
	srv, cli *tls.Config
}

func newStaticTLS(user *tls.Config, name string) *staticTLS {
	verify := verifyPeerName(name)
	chain := func(own func(tls.ConnectionState) error) func(tls.ConnectionState) error {
		return func(cs tls.ConnectionState) error {
			if err := verify(cs); err != nil {
				return err
			}
			if own != nil {
				return own(cs)
			}
			return nil
		}
	}
	srv := user.Clone()
	srv.ClientAuth = tls.RequireAndVerifyClientCert
	if srv.ClientCAs == nil {
		srv.ClientCAs = srv.RootCAs
	}
	srv.MinVersion = max(srv.MinVersion, tlsMinVersion)
	srv.VerifyConnection = chain(user.VerifyConnection)
	cli := user.Clone()
	cli.ServerName = name
	cli.MinVersion = max(cli.MinVersion, tlsMinVersion)
	cli.VerifyConnection = chain(user.VerifyConnection)
	return &staticTLS{srv: srv, cli: cli}
}

func (s *staticTLS) server() *tls.Config          { return s.srv }
func (s *staticTLS) client() (*tls.Config, error) { return s.cli, nil }

// checkLeaf reports why a node certificate cannot serve in this cluster:
// wrong name, wrong key usage, a CA that did not sign it, or expiry.
func checkLeaf(cert *tls.Certificate, pool *x509.CertPool, name string) error {
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("parse certificate: %w", err)
		}
	}
	if err := leaf.VerifyHostname(name); err != nil {
		return fmt.Errorf("the certificate is not valid for %q (its DNS names: %v); issue it with DNS SAN %q", name, leaf.DNSNames, name)
	}
	if len(leaf.ExtKeyUsage) > 0 && !(slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) ||
		slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) && slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth)) {
		return fmt.Errorf("the certificate's extended key usage must include both serverAuth and clientAuth, since every node is both")
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		DNSName: name, Roots: pool, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return fmt.Errorf("the certificate does not verify against the CA: %w", err)
	}
	return nil
}

// certNames is a certificate's names for a log line.
func certNames(cert *tls.Certificate) string {
	if cert == nil || cert.Leaf == nil {
		return ""
	}
	return strings.Join(cert.Leaf.DNSNames, ",")
}
