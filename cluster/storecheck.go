package cluster

import (
	"fmt"
	"path/filepath"

	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/fsm"
)

// rejoinHint tells the operator how a node whose DataDir is damaged gets
// its state back from its peers.
const rejoinHint = "to rejoin from the other nodes, make sure this node is out of the Raft configuration (a graceful stop, DeadServerTimeout, or remove-peer), move DataDir aside and start the node again under the same NodeName; see docs/failure-modes.md"

// checkSnapshot opens the newest snapshot in DataDir, which Raft restores
// at start, verifies its checksum and decodes it into a scratch state
// machine. A corrupt or truncated snapshot then fails Start with an error
// naming its file. Without this check Raft would log the failure and fall
// back to an older snapshot, whose log entries may already be compacted
// away, or fail with an error that names no file.
func checkSnapshot(dir string, snaps raft.SnapshotStore) error {
	list, err := snaps.List()
	if err != nil {
		return fmt.Errorf("%w: list snapshots in %s: %v", ErrDataDir, dir, err)
	}
	if len(list) == 0 {
		return nil
	}
	file := filepath.Join(dir, "snapshots", list[0].ID, "state.bin")
	_, rc, err := snaps.Open(list[0].ID)
	if err != nil {
		return fmt.Errorf("%w: snapshot %s is unreadable: %v; %s", ErrDataDir, file, err, rejoinHint)
	}
	if err := fsm.New(nil).Restore(rc); err != nil {
		return fmt.Errorf("%w: snapshot %s is damaged: %v; %s", ErrDataDir, file, err, rejoinHint)
	}
	return nil
}

// newRaft is raft.NewRaft, with its panics turned into errors. NewRaft
// panics when the log store cannot return the last entry it lists (a
// damaged log tail, or a store defect such as raft-wal v0.4.0's sealed
// tail), before it starts any goroutine, so recovering leaves nothing
// running; the application gets ErrDataDir naming dir instead of a crash.
func newRaft(conf *raft.Config, f raft.FSM, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore, trans raft.Transport, dir string) (r *raft.Raft, err error) {
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("%w: the Raft log in %s cannot be read: %v; %s", ErrDataDir, dir, p, rejoinHint)
		}
	}()
	r, err = raft.NewRaft(conf, f, logs, stable, snaps, trans)
	if err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	return r, nil
}
