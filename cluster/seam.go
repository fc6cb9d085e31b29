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
// part of Node's exported API. A nil *Node means no cluster, as it did when
// the scheduler's Cluster field was a *Node.
func init() { seam.ProvideFor(func(n *Node) seam.Coordinator { return plumbing{n} }) }

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

func (p plumbing) Claim(ctx context.Context, claims []fsm.Claim, anyOrder bool) (*fsm.ClaimResult, error) {
	return p.n.claim(ctx, claims, anyOrder)
}

func (p plumbing) Register(ctx context.Context, add, remove []string) error {
	return p.n.register(ctx, add, remove)
}

func (p plumbing) Candidates(job string) []string { return p.n.candidates(job) }

// BatchCounts returns how many Raft entries the node's batcher proposed
// while it led, and how many commands they carried; clustertest.BatchCounts
// hands them to benchmarks, which report commands per entry.
func (p plumbing) BatchCounts() (entries, commands uint64) {
	return p.n.batches.entries.Load(), p.n.batches.commands.Load()
}

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

func (p plumbing) RunNowChanged() <-chan struct{} { return p.n.fsm.RunNowChanged() }

func (p plumbing) History(job string) []fsm.HistoryEntry { return p.n.fsm.History(job) }

func (p plumbing) Tags() map[string]string { return p.n.cfg.Tags }

func (p plumbing) LocalRuns() *runreg.Registry { return p.n.localRuns() }
