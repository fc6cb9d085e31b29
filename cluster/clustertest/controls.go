package clustertest

import (
	"context"
	"errors"
	"slices"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/internal/seam"
)

// Candidates returns the sorted names of the live nodes that n sees
// registered for job: the nodes its scheduler spreads the job's ticks
// over. Tests use it to wait until every replica's Scheduler has
// registered, so that ranking is stable before they measure. Safe for
// concurrent use.
func Candidates(n *cluster.Node, job string) []string {
	c, ok := seam.Of(n)
	if !ok || c == nil {
		return nil
	}
	return slices.Clone(c.Candidates(job))
}

// BatchCounts returns how many Raft entries n's group commit proposed while
// n led, and how many commands (claims batches, lock operations, ...) they
// carried, since n started: over an interval, the leader's difference in
// commands divided by its difference in entries is how well group commit
// packed. Benchmarks outside the cluster package read it. Safe for
// concurrent use.
func BatchCounts(n *cluster.Node) (entries, commands uint64) {
	c, ok := seam.Of(n)
	if !ok || c == nil {
		return 0, 0
	}
	if b, ok := c.(interface{ BatchCounts() (uint64, uint64) }); ok {
		return b.BatchCounts()
	}
	return 0, 0
}

// Kill stops n at once without leaving Raft or gossip, as a crash would:
// peers see it fail, not leave, and its Raft entry stays until it comes
// back or is cleaned up. It cancels the runs of the Schedulers that use n
// and stops them, without waiting for the runs to return; their run leases
// and n's locks expire by their TTL. It is n.Shutdown with a context that
// has already ended, so it shares Shutdown's once-only guard: after it,
// Shutdown returns at once. It returns only the errors of closing n's
// components, not the cut-short shutdown that a crash is by design.
func Kill(n *cluster.Node) error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return crashErrors(n.Shutdown(ctx))
}

// crashErrors drops the cancellation from a Shutdown error, keeping any
// error of closing the node.
func crashErrors(err error) error {
	if err == nil {
		return nil
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	var keep []error
	for _, e := range joined.Unwrap() {
		if !errors.Is(e, context.Canceled) {
			keep = append(keep, e)
		}
	}
	return errors.Join(keep...)
}
