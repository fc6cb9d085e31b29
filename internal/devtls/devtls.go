package devtls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// DefaultValidity is how long certificates are valid unless told
// otherwise: long enough for a demo or a test run, short enough that a
// leaked one soon means nothing.
const DefaultValidity = 24 * time.Hour

// CA is a throwaway certificate authority. Its methods are safe for
// concurrent use.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// NewCA makes a CA valid from a minute ago for validity (DefaultValidity
// if zero), named name in its subject.
func NewCA(name string, validity time.Duration) (*CA, error) {
	if validity == 0 {
		validity = DefaultValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// PEM returns the CA certificate in PEM.
func (ca *CA) PEM() []byte { return ca.pem }

// Node describes one node certificate.
type Node struct {
	// CommonName is the subject's name, for logs; usually the node's name.
	CommonName string
	// DNSNames are the Subject Alternative Names; Interlock verifies
	// cluster.DefaultTLSServerName(ClusterName) among them.
	DNSNames []string
	// NotBefore and NotAfter default to a minute ago and DefaultValidity
	// from now; tests set them in the past to make an expired certificate.
	NotBefore, NotAfter time.Time
}

// Issue signs a node certificate, usable for both server and client
// authentication, and returns it and its key in PEM.
func (ca *CA) Issue(n Node) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate node key: %w", err)
	}
	now := time.Now()
	if n.NotBefore.IsZero() {
		n.NotBefore = now.Add(-time.Minute)
	}
	if n.NotAfter.IsZero() {
		n.NotAfter = now.Add(DefaultValidity)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: n.CommonName},
		DNSNames:     n.DNSNames,
		NotBefore:    n.NotBefore,
		NotAfter:     n.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign node certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// Files are the paths of one node's PEM files, the three fields of
// cluster.TLSConfig.
type Files struct {
	CAFile, CertFile, KeyFile string
}

// WriteNode issues a certificate for n and writes ca.pem, node.pem and
// node-key.pem (mode 0600) into dir, creating it. Each file is written to
// a temporary name and renamed, so a node reloading them never reads half
// a file.
func (ca *CA) WriteNode(dir string, n Node) (Files, error) {
	certPEM, keyPEM, err := ca.Issue(n)
	if err != nil {
		return Files{}, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return Files{}, fmt.Errorf("create %s: %w", dir, err)
	}
	f := Files{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "node.pem"), KeyFile: filepath.Join(dir, "node-key.pem")}
	for _, w := range []struct {
		path string
		data []byte
	}{{f.CAFile, ca.pem}, {f.KeyFile, keyPEM}, {f.CertFile, certPEM}} {
		if err := WriteFile(w.path, w.data); err != nil {
			return Files{}, err
		}
	}
	return f, nil
}

// WriteFile replaces path with data, mode 0600, through a rename.
func WriteFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// serial returns a random 127-bit certificate serial number.
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}
