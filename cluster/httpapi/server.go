package httpapi

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// server routes requests. Routing is the standard library's ServeMux with
// method patterns; ServeHTTP only adds JSON bodies to the 404 and 405
// answers that the mux would give in plain text.
type server struct {
	cfg Config
	mux *http.ServeMux
}

func newServer(cfg Config) *server {
	s := &server{cfg: cfg, mux: http.NewServeMux()}
	m := s.mux
	m.HandleFunc("GET /v1/status", s.status)
	m.HandleFunc("GET /v1/jobs", s.jobs)
	m.HandleFunc("GET /v1/jobs/{name}/history", s.history)
	m.HandleFunc("GET /v1/locks", s.locks)
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /readyz", s.readyz)
	if cfg.Gatherer != nil {
		m.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	} else {
		m.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "metrics are off on this node: set httpapi.Config.Gatherer to the Prometheus registry that Interlock's metrics are registered with")
		})
	}
	if cfg.EnablePprof {
		m.HandleFunc("GET /debug/pprof/", pprofIndex)
		m.HandleFunc("GET /debug/pprof/profile", pprofCPU)
		m.HandleFunc("GET /debug/pprof/trace", pprofTrace)
		m.HandleFunc("GET /debug/pprof/{profile}", pprofNamed)
	} else {
		m.HandleFunc("/debug/pprof/", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "profiling is off on this node: set httpapi.Config.EnablePprof to serve /debug/pprof/")
		})
	}
	m.Handle("GET /ui", uiHandler(cfg))
	m.HandleFunc("POST /v1/jobs/{name}/run", s.write(s.runNow))
	m.HandleFunc("POST /v1/jobs/{name}/pause", s.write(s.pause))
	m.HandleFunc("POST /v1/jobs/{name}/resume", s.write(s.resume))
	m.HandleFunc("POST /v1/peers/{name}/remove", s.write(s.removePeer))
	m.HandleFunc("POST /v1/leader/transfer", s.write(s.transferLeadership))
	return s
}

// routeMethods are the methods the API's routes use, tried to tell a 405
// from a 404.
var routeMethods = []string{http.MethodGet, http.MethodPost}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	var allow []string
	for _, m := range routeMethods {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allow, " or ")))
		return
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s; the API serves /v1/status, /v1/jobs, /v1/jobs/{name}/history, /v1/locks, /healthz, /readyz, /metrics and /ui", r.URL.Path))
}

// write guards a write operation: it is refused with 403 unless
// EnableWrite is set, and with 401 unless the request carries the bearer
// token. The token is compared in constant time.
func (s *server) write(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.cfg.EnableWrite {
			writeError(w, http.StatusForbidden, "write operations are off on this node: set httpapi.Config.EnableWrite and Token where the node mounts the API")
			return
		}
		auth := r.Header.Get("Authorization")
		token, ok := strings.CutPrefix(auth, "Bearer ")
		if auth == "" || !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="interlock"`)
			writeError(w, http.StatusUnauthorized, "missing bearer token: send the header \"Authorization: Bearer <token>\" (interlock -token, or INTERLOCK_TOKEN)")
			return
		}
		if subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="interlock", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "wrong bearer token: use the Token set in this node's httpapi.Config")
			return
		}
		h(w, r)
	}
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to tell it
}

// writeError answers with an Error body.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, Error{Error: msg})
}
