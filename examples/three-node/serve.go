package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/httpapi"
	"github.com/interlockraft/interlock/scheduler"
)

// statusServer serves one node's HTTP API and its status page, /ui, on
// 127.0.0.1, as an application would next to its own routes.
type statusServer struct {
	node string
	// url is the server's root, such as "http://127.0.0.1:8081/"; the
	// root redirects to the page.
	url  string
	srv  *http.Server
	done chan error
}

// newWriteToken returns a random bearer token for the API's write
// operations, so that `interlock pause report` works against the demo
// while nothing else on the machine can.
func newWriteToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make a write token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// serveStatus starts one HTTP server per node, on basePort+i, or on a free
// port when basePort is 0. On error it shuts down the servers it started.
func serveStatus(nodes []*cluster.Node, scheds []*scheduler.Scheduler, basePort int, token string, logger hclog.Logger) ([]*statusServer, error) {
	var out []*statusServer
	for i, n := range nodes {
		s, err := serveNode(n, scheds[i], basePort, i, token, logger.Named(n.Name()))
		if err != nil {
			shutdownStatus(out)
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func serveNode(n *cluster.Node, s *scheduler.Scheduler, basePort, i int, token string, logger hclog.Logger) (*statusServer, error) {
	api, err := httpapi.New(httpapi.Config{
		Node:        n,
		Schedulers:  []*scheduler.Scheduler{s},
		EnableWrite: true,
		Token:       token,
		Logger:      logger,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: HTTP API: %w", n.Name(), err)
	}
	port := 0
	if basePort != 0 {
		port = basePort + i
	}
	ln, err := net.Listen("tcp", addr(port))
	if err != nil {
		return nil, fmt.Errorf("%s: listen for the HTTP API (-http-port %d): %w", n.Name(), basePort, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", http.RedirectHandler("/ui", http.StatusFound))
	mux.Handle("/", api)
	st := &statusServer{
		node: n.Name(),
		url:  "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)) + "/",
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
		},
		done: make(chan error, 1),
	}
	go func() { st.done <- st.srv.Serve(ln) }()
	return st, nil
}

// shutdownStatus stops the servers, letting requests in flight finish for
// up to 5 s.
func shutdownStatus(servers []*statusServer) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		if err := s.srv.Shutdown(ctx); err != nil {
			s.srv.Close()
		}
		if err := <-s.done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Printf("HTTP server of %s: %v\n", s.node, err)
		}
	}
}
