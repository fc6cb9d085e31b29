package cluster

import (
	"context"
	"time"

	"github.com/interlockraft/interlock/fsm"
	"github.com/interlockraft/interlock/internal/runreg"
)

// localRuns returns the registry of this node's job runs, shared by every
// Scheduler that uses the node. The scheduler keeps through it at most one
// run per (job, scheduled instant) on this node and one Scheduler per job
// name. Shutdown closes it, which stops the node's Schedulers and cancels
// their runs. Safe for concurrent use.
func (n *Node) localRuns() *runreg.Registry { return n.runs }

// stopLocalRuns stops this node's Schedulers and cancels their runs, waits
// up to LeaveTimeout (and no longer than ctx) for the runs to return, and
// encodes the node release: it frees the run leases of every run that ended
// and keeps those of runs still going, which expire by their TTL. A run
// still going is logged at Warn, because while it goes on it may act after
// its lease expired; its fencing token is what lets a resource refuse it.
// ok is false if ctx ended first: the node then releases nothing.
func (n *Node) stopLocalRuns(ctx context.Context) (release []byte, ok bool) {
	n.runs.Close()
	if ctx.Err() != nil {
		return nil, false
	}
	wctx, cancel := context.WithTimeout(ctx, n.cfg.LeaveTimeout)
	left := n.runs.Wait(wctx)
	cancel()
	if ctx.Err() != nil {
		return nil, false
	}
	if len(left) == 0 {
		return fsm.EncodeNodeRelease(n.cfg.NodeName), true
	}
	keep := make([]string, 0, len(left))
	for _, r := range left {
		n.logger.Warn("run did not stop after its context was cancelled; its run lease stays until it expires",
			"job", r.Job, "tick", r.Tick, "token", r.Token, "at", time.Unix(0, r.At), "waited", n.cfg.LeaveTimeout)
		keep = append(keep, r.Job)
	}
	return fsm.EncodeNodeReleaseKeeping(n.cfg.NodeName, keep), true
}
