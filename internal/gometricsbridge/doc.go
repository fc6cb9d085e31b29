// Package gometricsbridge forwards the metrics that hashicorp/raft,
// raft-boltdb and memberlist emit through go-metrics into Prometheus
// registries.
//
// Those libraries report through go-metrics' process-wide global (the
// compat package picks armon/go-metrics, or hashicorp/go-metrics when the
// program is built with -tags hashicorpmetrics; both are handled, since
// this package goes through compat too). A global cannot tell nodes
// apart, so while several bridges are attached in one process each of
// their registries receives the samples of every node in the process.
package gometricsbridge
