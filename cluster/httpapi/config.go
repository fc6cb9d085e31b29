package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/scheduler"
)

var (
	// ErrInvalidConfig means a Config field is unusable; the message names
	// the field and how to fix it.
	ErrInvalidConfig = errors.New("httpapi: invalid config")
)

// Config says what the handler serves. Only Node is required; everything
// that changes the cluster or exposes internals is off by default.
type Config struct {
	// Node is the node whose view the API serves. Required.
	Node *cluster.Node
	// Schedulers are the Schedulers on Node whose jobs /v1/jobs lists and
	// whose jobs the write operations act on. None: no jobs are listed.
	Schedulers []*scheduler.Scheduler
	// Gatherer, if set, is served at /metrics (for instance the
	// prometheus.Registry the application registered Interlock's metrics
	// with). nil: /metrics answers 404 saying how to turn it on.
	Gatherer prometheus.Gatherer
	// EnableWrite turns on the POST operations (run-now, pause, resume,
	// remove-peer, transfer-leadership). They then require Token.
	EnableWrite bool
	// Token is the bearer token the write operations require, sent as
	// "Authorization: Bearer <Token>". Required with EnableWrite.
	Token string
	// EnablePprof serves Go's runtime profiles under /debug/pprof/.
	// Profiles reveal internals and cost CPU: serve them only where the
	// handler is not reachable from outside.
	EnablePprof bool
	// Logger receives a line per write operation. Default: Node's logger.
	Logger hclog.Logger
}

// New returns the API's handler for cfg. Mount it at the root of a server
// or under a prefix with http.StripPrefix. The handler is safe for
// concurrent use; it reads the node's and the schedulers' state on each
// request and keeps none of its own.
func New(cfg Config) (http.Handler, error) {
	if cfg.Node == nil {
		return nil, fmt.Errorf("%w: Node is nil; pass the *cluster.Node that cluster.Start returned", ErrInvalidConfig)
	}
	for i, s := range cfg.Schedulers {
		if s == nil {
			return nil, fmt.Errorf("%w: Schedulers[%d] is nil; pass only Schedulers that scheduler.New returned", ErrInvalidConfig, i)
		}
	}
	if cfg.EnableWrite && cfg.Token == "" {
		return nil, fmt.Errorf("%w: EnableWrite is set but Token is empty; set Token to a long random secret, which clients send as a bearer token", ErrInvalidConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = cfg.Node.Logger()
	}
	cfg.Logger = cfg.Logger.Named("http")
	return newServer(cfg), nil
}
