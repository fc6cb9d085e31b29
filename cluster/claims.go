package cluster

import (
	"context"
	"fmt"

	"github.com/interlockraft/interlock/fsm"
)

// claim asks the cluster to grant this node the given (job, instant) pairs,
// in one Raft entry; a claim's At, not its tick index, names the tick. It
// returns once the entry is committed and applied on the leader, with one
// Outcome per claim; a granted Outcome's Token is the run's fencing token.
// It retries across leader changes until ctx ends; a retry that reaches the
// state machine again, even in the entry that granted the original, gets
// the same grant and token. anyOrder asks for claims that may be granted
// after a later instant of their job; they go as plain claims until every
// server speaks fsm.ProtocolAnyOrder (see also admit).
func (n *Node) claim(ctx context.Context, claims []fsm.Claim, anyOrder bool) (*fsm.ClaimResult, error) {
	anyOrder = anyOrder && n.speaks(fsm.ProtocolAnyOrder)
	resp, err := n.submit(ctx, fsm.EncodeClaims(fsm.ClaimBatch{Node: n.cfg.NodeName, Claims: claims, AnyOrder: anyOrder}))
	if err != nil {
		return nil, err
	}
	res, err := fsm.DecodeClaimResult(resp)
	if err != nil {
		return nil, fmt.Errorf("decode claim result: %w", err)
	}
	if len(res.Outcomes) != len(claims) {
		return nil, fmt.Errorf("claim result has %d outcomes for %d claims", len(res.Outcomes), len(claims))
	}
	return res, nil
}

// register records in the cluster that this node runs the add jobs and no
// longer runs the remove jobs, so ticks are spread over the nodes that can
// run them.
func (n *Node) register(ctx context.Context, add, remove []string) error {
	_, err := n.submit(ctx, fsm.EncodeRegistration(fsm.Registration{Node: n.cfg.NodeName, Add: add, Remove: remove}))
	return err
}

// candidates returns the sorted names of the live nodes that registered the
// job: the nodes a tick of it may be spread over. It reads local state and
// never blocks on the network. When every registered node is alive, as
// usual, it returns the state machine's shared slice rather than a copy:
// the scheduler asks on every tick of every job. Callers must not modify
// it.
func (n *Node) candidates(job string) []string {
	registered := n.fsm.Registered(job)
	alive := *n.alive.Load()
	for i, name := range registered {
		if _, ok := alive[name]; ok {
			continue
		}
		out := make([]string, i, len(registered)-1)
		copy(out, registered[:i])
		for _, name := range registered[i+1:] {
			if _, ok := alive[name]; ok {
				out = append(out, name)
			}
		}
		return out
	}
	return registered
}

// lastGrant returns the latest grant of a job as this node's state machine
// knows it, which may lag the leader's by a few milliseconds. Compare its
// LastAt, the granted instant, with a tick's instant: tick indexes differ
// between replicas configured with different intervals.
func (n *Node) lastGrant(job string) (fsm.JobState, bool) {
	return n.fsm.Job(job)
}

// updateRuns renews the run leases of renew and ends those of done, all
// held by this node, in one Raft entry. It returns, in renew's order,
// whether each lease was still held; a false means another node may now run
// the job, so the run should stop.
func (n *Node) updateRuns(ctx context.Context, renew, done []fsm.RunRef) ([]bool, error) {
	return n.reportRuns(ctx, renew, done, nil)
}

// reportRuns is updateRuns that also adds finished runs to their jobs'
// histories, in the same entry.
func (n *Node) reportRuns(ctx context.Context, renew, done []fsm.RunRef, finished []fsm.Finished) ([]bool, error) {
	resp, err := n.submit(ctx, fsm.EncodeRunUpdate(fsm.RunUpdate{Node: n.cfg.NodeName, Renew: renew, Done: done, Finished: n.finishedRuns(finished)}))
	if err != nil {
		return nil, err
	}
	res, err := fsm.DecodeRunUpdateResult(resp)
	if err != nil {
		return nil, fmt.Errorf("decode run update result: %w", err)
	}
	if len(res.Renewed) != len(renew) {
		return nil, fmt.Errorf("run update result has %d answers for %d renewals", len(res.Renewed), len(renew))
	}
	return res.Renewed, nil
}
