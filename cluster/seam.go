package cluster

import (
	"context"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/fsm"
	"github.com/interlockraft/interlock/internal/runreg"
	"github.com/interlockraft/interlock/internal/seam"
)

// The scheduler reaches a node's plumbing (claims, registrations, run
// leases, the local run registry) only through this hook, so none of it is
// part of Node's exported API.
func init() { seam.Provide(coordinatorOf) }

// coordinatorOf recognises a *Node. A nil *Node gives a nil Coordinator,
// which the scheduler treats as no cluster, as it did when its Cluster
// field was a *Node.
func coordinatorOf(x any) (seam.Coordinator, bool) {
	n, ok := x.(*Node)
	if !ok {
		return nil, false
	}
	if n == nil {
		return nil, true
	}
	return plumbing{n}, true
}

// plumbing is a node as the scheduler sees it. It implements
// seam.Coordinator, seam.RunLeaser, seam.RunReporter, seam.Controller,
// seam.Tagger and seam.LocalRunner.
type plumbing struct{ n *Node }

var (
	_ seam.Coordinator = plumbing{}
	_ seam.RunLeaser   = plumbing{}
	_ seam.LocalRunner = plumbing{}
	_ seam.RunReporter = plumbing{}
	_ seam.Controller  = plumbing{}
	_ seam.Tagger      = plumbing{}
)

func (p plumbing) Name() string         { return p.n.Name() }
func (p plumbing) Logger() hclog.Logger { return p.n.Logger() }

func (p plumbing) Claim(ctx context.Context, claims []fsm.Claim) (*fsm.ClaimResult, error) {
	return p.n.claim(ctx, claims)
}

func (p plumbing) Register(ctx context.Context, add, remove []string) error {
	return p.n.register(ctx, add, remove)
}

func (p plumbing) Candidates(job string) []string { return p.n.candidates(job) }

func (p plumbing) LastGrant(job string) (fsm.JobState, bool) { return p.n.lastGrant(job) }

func (p plumbing) UpdateRuns(ctx context.Context, renew, done []fsm.RunRef) ([]bool, error) {
	return p.n.updateRuns(ctx, renew, done)
}

func (p plumbing) ReportRuns(ctx context.Context, renew, done []fsm.RunRef, finished []fsm.Finished) ([]bool, error) {
	return p.n.reportRuns(ctx, renew, done, finished)
}

func (p plumbing) SetPaused(ctx context.Context, job string, paused bool) error {
	return p.n.setPaused(ctx, job, paused)
}

func (p plumbing) RunNow(ctx context.Context, job string) (*fsm.RunNowResult, error) {
	return p.n.runNow(ctx, job)
}

func (p plumbing) Paused(job string) bool { return p.n.fsm.Paused(job) }

func (p plumbing) RunNowRequests() map[string]fsm.RunNowRequest { return p.n.fsm.RunNowRequests() }

func (p plumbing) History(job string) []fsm.HistoryEntry { return p.n.fsm.History(job) }

func (p plumbing) Tags() map[string]string { return p.n.cfg.Tags }

func (p plumbing) LocalRuns() *runreg.Registry { return p.n.localRuns() }
