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
// seam.Coordinator, seam.RunLeaser and seam.LocalRunner.
type plumbing struct{ n *Node }

var (
	_ seam.Coordinator = plumbing{}
	_ seam.RunLeaser   = plumbing{}
	_ seam.LocalRunner = plumbing{}
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

func (p plumbing) LocalRuns() *runreg.Registry { return p.n.localRuns() }
