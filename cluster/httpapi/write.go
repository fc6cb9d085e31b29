package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/scheduler"
)

// writeTimeout bounds a write operation. Each goes through the Raft log,
// retried across a leader change, so it needs more than one election.
const writeTimeout = 15 * time.Second

func (s *server) runNow(w http.ResponseWriter, r *http.Request) {
	s.jobOp(w, r, "run", (*scheduler.Scheduler).RunNow, "requested a run of %s now; it starts shortly on one of its nodes")
}

func (s *server) pause(w http.ResponseWriter, r *http.Request) {
	s.jobOp(w, r, "pause", (*scheduler.Scheduler).Pause, "paused %s cluster-wide; a run already going is not stopped")
}

func (s *server) resume(w http.ResponseWriter, r *http.Request) {
	s.jobOp(w, r, "resume", (*scheduler.Scheduler).Resume, "resumed %s cluster-wide from its next tick")
}

// jobOp runs one of the Scheduler's job controls on the job named in the
// path, after checking this node has it.
func (s *server) jobOp(w http.ResponseWriter, r *http.Request, action string, op func(*scheduler.Scheduler, context.Context, string) error, done string) {
	name := r.PathValue("name")
	sch, ok := s.findJob(w, name)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	if err := op(sch, ctx, name); err != nil {
		s.fail(w, action, name, err)
		return
	}
	s.cfg.Logger.Info("job control by HTTP request", "job", name, "action", action, "remote", r.RemoteAddr)
	s.done(w, action, name, fmt.Sprintf(done, name))
}

func (s *server) removePeer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	if err := s.cfg.Node.RemovePeer(ctx, name); err != nil {
		s.fail(w, "remove-peer", name, err)
		return
	}
	s.cfg.Logger.Info("peer removed by HTTP request", "server", name, "remote", r.RemoteAddr)
	s.done(w, "remove-peer", name, fmt.Sprintf("removed %s from the Raft configuration and released its locks and leases", name))
}

func (s *server) transferLeadership(w http.ResponseWriter, r *http.Request) {
	to := r.URL.Query().Get("to")
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	if err := s.cfg.Node.TransferLeadership(ctx, to); err != nil {
		s.fail(w, "transfer-leadership", to, err)
		return
	}
	s.cfg.Logger.Info("leadership transferred by HTTP request", "to", to, "remote", r.RemoteAddr)
	// The transfer is done when Raft says so; the new leader's first
	// heartbeat may take a moment more to tell this node who it is.
	leader := s.cfg.Node.Leader()
	for i := 0; leader == "" || leader == s.cfg.Node.Name() && to != s.cfg.Node.Name(); i++ {
		if i == 100 || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
		leader = s.cfg.Node.Leader()
	}
	s.done(w, "transfer-leadership", to, fmt.Sprintf("leadership moved from %s to %s", s.cfg.Node.Name(), leader))
}

func (s *server) done(w http.ResponseWriter, action, target, msg string) {
	writeJSON(w, http.StatusOK, Action{Action: action, Target: target, Node: s.cfg.Node.Name(), Leader: s.cfg.Node.Leader(), Message: msg})
}

// fail answers a refused or failed write with the status its error
// calls for and the error's own text, which says what to do.
func (s *server) fail(w http.ResponseWriter, action, target string, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, scheduler.ErrUnknownJob), errors.Is(err, cluster.ErrUnknownPeer):
		code = http.StatusNotFound
	case errors.Is(err, cluster.ErrRemoveSelf):
		code = http.StatusBadRequest
	case errors.Is(err, scheduler.ErrPaused), errors.Is(err, cluster.ErrPeerAlive), errors.Is(err, cluster.ErrNotLeader):
		code = http.StatusConflict
	case errors.Is(err, cluster.ErrNoLeader), errors.Is(err, cluster.ErrShutdown):
		code = http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	}
	s.cfg.Logger.Debug("write operation refused", "action", action, "target", target, "error", err)
	writeError(w, code, err.Error())
}
