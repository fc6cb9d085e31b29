package cluster

import (
	"context"
	"errors"
	"testing"

	"github.com/interlockraft/interlock/fsm"
)

// TestForwardedBatchReachesBatcherWhole checks that a follower's forwarded
// batch reaches the batcher as one piece, in order, so the batcher cannot
// cut an entry between its commands; that a batch with a command this
// node cannot admit is refused whole, with nothing queued; and that an
// empty batch queues nothing.
func TestForwardedBatchReachesBatcherWhole(t *testing.T) {
	n := &Node{proposals: make(chan []*proposal, 4), shutdownCh: make(chan struct{})}
	cmds := [][]byte{
		fsm.EncodeLockOp(fsm.CommandLockAcquire, fsm.LockOp{Name: "a"}),
		fsm.EncodeLockOp(fsm.CommandLockRelease, fsm.LockOp{Name: "a"}),
		fsm.EncodeLockExpire(),
	}
	ps, err := n.enqueueGroup(context.Background(), cmds, true)
	if err != nil {
		t.Fatalf("enqueueGroup: %v", err)
	}
	if len(n.proposals) != 1 {
		t.Fatalf("the batcher's queue holds %d groups, want the batch as 1", len(n.proposals))
	}
	got := <-n.proposals
	if len(got) != len(cmds) || len(ps) != len(cmds) {
		t.Fatalf("queued %d proposals (returned %d), want %d", len(got), len(ps), len(cmds))
	}
	for i, p := range got {
		if p != ps[i] || string(p.cmd) != string(cmds[i]) || !p.remote {
			t.Errorf("proposal %d: queued %+v, want command %d, returned to the caller, marked remote", i, p, i)
		}
	}

	// A command of a type this build does not know (the type is the
	// header's second byte), as a newer follower might forward.
	unknown := fsm.EncodeLockExpire()
	unknown[1] = 0xff
	if _, err := n.enqueueGroup(context.Background(), [][]byte{cmds[0], unknown}, true); !errors.Is(err, fsm.ErrUnknownCommand) {
		t.Fatalf("a batch with an unknown command: err = %v, want ErrUnknownCommand", err)
	}
	if len(n.proposals) != 0 {
		t.Errorf("a refused batch left %d groups queued, want none", len(n.proposals))
	}

	// An empty batch, which a follower could forward, is answered at once
	// with nothing queued, even with the caller already gone.
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if ps, err := n.enqueueGroup(gone, nil, true); err != nil || len(ps) != 0 || len(n.proposals) != 0 {
		t.Errorf("an empty batch: %d proposals, err %v, %d groups queued; want none, nil, none", len(ps), err, len(n.proposals))
	}
}
