package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// tlsReloadCheck is the most often a handshake looks at the files' mtimes.
//
// The store checks on handshakes rather than with a background poller or a
// file watcher: connections between nodes are long-lived and pooled, so
// handshakes are rare and a stat of three files each time costs nothing;
// a renewed certificate is in force for the very next connection, with no
// goroutine to stop and no inotify limits in containers; and under a flood
// of handshakes the cache bounds the stats to one round per second.
const tlsReloadCheck = time.Second

// fileStamp identifies one version of a file.
type fileStamp struct {
	mod  time.Time
	size int64
}

// tlsStore holds the node's certificate and CA pool read from files, and
// re-reads them when a file's mtime or size changes. A version that fails
// to load (a half-written file, a key that does not match the certificate)
// is logged once and the previous material kept, so a renewal in progress
// never takes a node off the cluster. Safe for concurrent use.
type tlsStore struct {
	caFile, certFile, keyFile string
	name                      string
	logger                    hclog.Logger
	verify                    func(tls.ConnectionState) error

	mu      sync.Mutex
	checked time.Time
	stamps  [3]fileStamp // of the loaded version
	failed  [3]fileStamp // of the last version that failed, logged once
	cert    *tls.Certificate
	pool    *x509.CertPool
}

func newTLSStore(caFile, certFile, keyFile, name string, logger hclog.Logger) (*tlsStore, error) {
	s := &tlsStore{caFile: caFile, certFile: certFile, keyFile: keyFile, name: name, logger: logger, verify: verifyPeerName(name)}
	stamps, err := s.stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	cert, pool, err := s.load()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	s.cert, s.pool, s.stamps, s.checked = cert, pool, stamps, time.Now()
	return s, nil
}

// stat returns the stamps of the three files.
func (s *tlsStore) stat() ([3]fileStamp, error) {
	var out [3]fileStamp
	for i, f := range []struct{ field, path string }{{"CAFile", s.caFile}, {"CertFile", s.certFile}, {"KeyFile", s.keyFile}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			return out, fmt.Errorf("TLS.%s: %v", f.field, err)
		}
		out[i] = fileStamp{mod: fi.ModTime(), size: fi.Size()}
	}
	return out, nil
}

// load reads and checks the files; errors name the field.
func (s *tlsStore) load() (*tls.Certificate, *x509.CertPool, error) {
	caPEM, err := os.ReadFile(s.caFile)
	if err != nil {
		return nil, nil, fmt.Errorf("TLS.CAFile: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("TLS.CAFile %s holds no PEM certificate", s.caFile)
	}
	cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("TLS.CertFile %s and TLS.KeyFile %s: %v", s.certFile, s.keyFile, err)
	}
	if err := checkLeaf(&cert, pool, s.name); err != nil {
		return nil, nil, fmt.Errorf("TLS.CertFile %s: %v", s.certFile, err)
	}
	return &cert, pool, nil
}

// current returns the certificate and pool in force, reloading them first
// if a file changed since the last look (at most once per tlsReloadCheck).
func (s *tlsStore) current() (*tls.Certificate, *x509.CertPool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if now.Sub(s.checked) < tlsReloadCheck {
		return s.cert, s.pool
	}
	s.checked = now
	stamps, err := s.stat()
	if err != nil || stamps == s.stamps {
		if err != nil && stamps != s.failed {
			s.failed = stamps
			s.logger.Warn("keeping the TLS certificate in use: cannot read the files", "error", err)
		}
		return s.cert, s.pool
	}
	cert, pool, err := s.load()
	if err != nil {
		if stamps != s.failed {
			s.failed = stamps
			s.logger.Warn("keeping the TLS certificate in use: the changed files do not load", "error", err)
		}
		return s.cert, s.pool
	}
	s.cert, s.pool, s.stamps = cert, pool, stamps
	s.logger.Info("reloaded TLS certificate and CA", "names", certNames(cert), "not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return s.cert, s.pool
}

// server returns the listener's configuration: every handshake asks for a
// configuration built from the current files.
func (s *tlsStore) server() *tls.Config {
	return &tls.Config{
		MinVersion: tlsMinVersion,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, pool := s.current()
			return &tls.Config{
				MinVersion:       tlsMinVersion,
				Certificates:     []tls.Certificate{*cert},
				ClientAuth:       tls.RequireAndVerifyClientCert,
				ClientCAs:        pool,
				VerifyConnection: s.verify,
			}, nil
		},
	}
}

// client returns the configuration for one outbound connection.
func (s *tlsStore) client() (*tls.Config, error) {
	cert, pool := s.current()
	return &tls.Config{
		MinVersion: tlsMinVersion,
		// Sent even when the server asks for another CA's certificates,
		// where Certificates would send none: the server's refusal then
		// names the real cause (mid CA rotation, say) instead of "no
		// certificate".
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil },
		RootCAs:              pool,
		ServerName:           s.name,
		VerifyConnection:     s.verify,
	}, nil
}
