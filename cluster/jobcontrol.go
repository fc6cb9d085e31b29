package cluster

import (
	"context"
	"fmt"

	"github.com/interlockraft/interlock/fsm"
)

// setPaused pauses (paused true) or resumes a job cluster-wide, through
// the log, so every node and every node that restarts later sees it. It
// returns once the entry is committed and applied on the leader. Pausing
// twice, or resuming a job that is not paused, is not an error.
func (n *Node) setPaused(ctx context.Context, job string, paused bool) error {
	_, err := n.submit(ctx, fsm.EncodePause(fsm.Pause{Job: job, Paused: paused}))
	return err
}

// runNow records a request for one extra run of job; the nodes that run
// the job claim it as they claim a tick. A request made while one is
// pending joins it.
func (n *Node) runNow(ctx context.Context, job string) (*fsm.RunNowResult, error) {
	resp, err := n.submit(ctx, fsm.EncodeRunNow(job))
	if err != nil {
		return nil, err
	}
	res, err := fsm.DecodeRunNowResult(resp)
	if err != nil {
		return nil, fmt.Errorf("decode run-now result: %w", err)
	}
	return res, nil
}
