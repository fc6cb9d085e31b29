package transport_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/internal/devtls"
	"github.com/interlockraft/interlock/transport"
)

const testServerName = "server.test.interlock"

// testCert issues a node certificate of ca for testServerName.
func testCert(t *testing.T, ca *devtls.CA, node devtls.Node) tls.Certificate {
	t.Helper()
	if node.DNSNames == nil {
		node.DNSNames = []string{testServerName}
	}
	certPEM, keyPEM, err := ca.Issue(node)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestTLSMuxRefusesEachCauseWithOneLine serves RPCs over a Mux with
// UseTLS, requiring client certificates of one CA. A client with a
// certificate of that CA gets its answers; a plaintext client, one with another CA's certificate, one with an
// expired certificate and one with none each fail five times in a row,
// and the Mux logs each cause in exactly one line.
func TestTLSMuxRefusesEachCauseWithOneLine(t *testing.T) {
	ca, err := devtls.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := devtls.NewCA("other CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM())
	f := newHardFixture(t, 0)
	transport.SetHandshakeTimeout(f.mux, 5*time.Second)
	f.mux.UseTLS(&tls.Config{
		Certificates: []tls.Certificate{testCert(t, ca, devtls.Node{CommonName: "server"})},
		ClientCAs:    pool, ClientAuth: tls.RequireAndVerifyClientCert,
	})
	logger := hclog.New(&hclog.LoggerOptions{Output: f.logs, Level: hclog.Debug})
	dialer := func(cert *tls.Certificate) transport.Dialer {
		if cert == nil {
			return nil // plaintext
		}
		return transport.NewTLSDialer(nil, func() (*tls.Config, error) {
			return &tls.Config{
				GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil },
				RootCAs:              pool, ServerName: testServerName,
			}, nil
		}, logger)
	}
	good := testCert(t, ca, devtls.Node{CommonName: "good"})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	client := transport.NewClient(dialer(&good))
	defer client.Close()
	if resp, err := client.Call(ctx, f.addr(), 7, []byte("ping")); err != nil || string(resp) != "\x07ping" {
		t.Fatalf("RPC over mutual TLS = %q, %v; want the echo", resp, err)
	}

	past := time.Now().Add(-48 * time.Hour)
	tests := []struct {
		name string
		cert *tls.Certificate
		log  string
	}{
		{"plaintext", nil, "peer does not speak TLS"},
		{"another CA", ptr(testCert(t, other, devtls.Node{CommonName: "other"})), "peer certificate is not signed by a trusted CA"},
		{"expired", ptr(testCert(t, ca, devtls.Node{CommonName: "old", NotBefore: past, NotAfter: past.Add(time.Hour)})), "peer certificate has expired"},
		{"no certificate", &tls.Certificate{}, "peer sent no certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := transport.NewClient(dialer(tt.cert))
			defer c.Close()
			for range 5 {
				if _, err := c.Call(ctx, f.addr(), 7, []byte("ping")); err == nil {
					t.Fatal("the Mux answered a refused client")
				}
			}
			waitFor(t, "the refusal's log line", func() bool { return f.logs.count(tt.log) > 0 })
			if n := f.logs.count("refusing inbound connection: " + tt.log); n != 1 {
				t.Errorf("%q logged %d times for 5 attempts; want once\n%s", tt.log, n, f.logs)
			}
		})
	}
	if _, err := client.Call(ctx, f.addr(), 7, []byte("ping")); err != nil {
		t.Fatalf("RPC over mutual TLS after the refusals: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
