package clustertest

import (
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
	return c.Candidates(job)
}
