// Package httpapi is Interlock's HTTP interface for operators: a JSON status
// and jobs API, health and readiness checks, Prometheus metrics, an optional
// set of write operations behind a bearer token, and a self-refreshing
// status page at /ui. The application mounts the handler wherever it likes,
// next to its own routes; nothing listens unless the application serves it.
package httpapi
