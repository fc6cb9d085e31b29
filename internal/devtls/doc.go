// Package devtls makes throwaway certificates for Interlock's mutual TLS:
// an ECDSA P-256 CA and node certificates it signs, valid for a short time,
// written as PEM files. Tests, the examples and the -dev-tls flag use it;
// it lives under internal/ because real deployments issue certificates
// from their own CA (openssl, cfssl, Vault, cert-manager; see
// docs/security.md), not from a key generated at start-up.
package devtls
