package main

import (
	"flag"
	"fmt"
	"path/filepath"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/internal/devtls"
)

var devTLS = flag.Bool("dev-tls", false, "encrypt and authenticate Raft/RPC with mutual TLS, from a throwaway CA made in the data dir")

// useDevTLS makes a throwaway CA and gives each node a certificate of it
// for the cluster's server name, written under its DataDir. Real
// deployments issue certificates from their own CA: see docs/security.md.
func useDevTLS(cfgs []cluster.Config) error {
	ca, err := devtls.NewCA("interlock three-node demo CA", devtls.DefaultValidity)
	if err != nil {
		return err
	}
	for i := range cfgs {
		c := &cfgs[i]
		f, err := ca.WriteNode(filepath.Join(c.DataDir, "tls"), devtls.Node{
			CommonName: c.NodeName,
			DNSNames:   []string{cluster.DefaultTLSServerName(c.ClusterName)},
		})
		if err != nil {
			return fmt.Errorf("-dev-tls: %w", err)
		}
		c.TLS = &cluster.TLSConfig{CAFile: f.CAFile, CertFile: f.CertFile, KeyFile: f.KeyFile}
	}
	fmt.Printf("mutual TLS on: certificates for %s in each node's data dir\n", cluster.DefaultTLSServerName(cfgs[0].ClusterName))
	return nil
}
