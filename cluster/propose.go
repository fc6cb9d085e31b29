package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/fsm"
	"github.com/interlockraft/interlock/transport"
)

// RPC methods between nodes.
const (
	// methodApply forwards an encoded command to the leader, which stamps
	// and applies it and answers with the encoded result.
	methodApply transport.Method = 1
	// methodLeave asks the leader to remove the calling node from the Raft
	// configuration during a graceful shutdown.
	methodLeave transport.Method = 2
	// methodStats asks a node for its Raft last contact, term and index,
	// which the leader's autopilot judges server health by (autopilot.go).
	methodStats transport.Method = 3
)

// Wire codes for the sentinel errors a remote node may return.
const (
	codeNotLeader uint16 = 1
	codeShutdown  uint16 = 2
)

func errorCode(err error) uint16 {
	switch {
	case errors.Is(err, ErrNotLeader):
		return codeNotLeader
	case errors.Is(err, ErrShutdown):
		return codeShutdown
	default:
		return 0
	}
}

// fromRemote maps a remote error back to its sentinel.
func fromRemote(err error) error {
	var re *transport.RemoteError
	if !errors.As(err, &re) {
		return err
	}
	switch re.Code {
	case codeNotLeader:
		return fmt.Errorf("%w: %s", ErrNotLeader, re.Message)
	case codeShutdown:
		return fmt.Errorf("%w: %s", ErrShutdown, re.Message)
	default:
		return err
	}
}

// propose gets cmd committed and applied through the current leader, locally
// or by forwarding, and returns the leader's encoded result. It retries
// across leader changes until ctx ends. A retry after a lost reply may apply
// the command twice, so every command must be idempotent (claims answer a
// repeat with the original grant).
func (n *Node) propose(ctx context.Context, cmd []byte) ([]byte, error) {
	var lastErr error
	backoff := 5 * time.Millisecond
	for {
		select {
		case <-n.shutdownCh:
			return nil, ErrShutdown
		default:
		}
		var resp []byte
		var err error
		changed := n.leaders.next()
		addr, id := n.raft.LeaderWithID()
		switch {
		case id == "":
			err = ErrNoLeader
		case id == n.raftID:
			resp, err = n.applyLocal(cmd)
		default:
			resp, err = n.forward(ctx, changed, string(addr), cmd)
		}
		if err == nil {
			return resp, nil
		}
		if !retryable(err) {
			return nil, err
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("propose %s: %w (last error: %v)", commandName(cmd), ctx.Err(), lastErr)
		case <-n.shutdownCh:
			return nil, ErrShutdown
		case <-time.After(backoff):
		}
		if backoff < 100*time.Millisecond {
			backoff *= 2
		}
	}
}

func commandName(cmd []byte) string {
	h, err := fsm.PeekHeader(cmd)
	if err != nil {
		return "command"
	}
	return h.Type.String()
}

// retryable reports whether another attempt, perhaps on another leader,
// could succeed. Errors from the state machine itself are final.
func retryable(err error) bool {
	switch {
	case errors.Is(err, ErrNotLeader), errors.Is(err, ErrNoLeader):
		return true
	case errors.Is(err, ErrShutdown):
		// The remote leader is shutting down; a new one will follow. Our
		// own shutdown is caught by the loop.
		return true
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return true
	case errors.Is(err, fsm.ErrMalformed), errors.Is(err, fsm.ErrUnknownCommand), errors.Is(err, fsm.ErrUnsupportedVersion):
		return false
	}
	var re *transport.RemoteError
	if errors.As(err, &re) {
		return false // the leader answered with a final error
	}
	return true // network errors: the leader may have died
}

// forward sends cmd to the leader at addr. It gives up early if the leader
// changes (changed closes) while it waits; propose then retries with the
// new one.
func (n *Node) forward(ctx context.Context, changed <-chan struct{}, addr string, cmd []byte) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, n.cfg.ProposeTimeout)
	defer cancel()
	go func() {
		select {
		case <-changed:
			cancel()
		case <-cctx.Done():
		}
	}()
	resp, err := n.rpc.Call(cctx, addr, methodApply, cmd)
	if err != nil {
		select {
		case <-changed:
			if ctx.Err() == nil && cctx.Err() != nil {
				return nil, fmt.Errorf("%w: leader changed while forwarding to %s", ErrNotLeader, addr)
			}
		default:
		}
		return nil, fromRemote(err)
	}
	return resp, nil
}

// applyLocal stamps the leader's clock into cmd and applies it. Only the
// leader's copy of cmd is stamped, so the time every replica sees is the
// leader's at proposal.
func (n *Node) applyLocal(cmd []byte) ([]byte, error) {
	if n.raft.State() != raft.Leader {
		return nil, ErrNotLeader
	}
	// Stamp a copy: an earlier attempt's entry may still reference cmd
	// inside Raft, and the caller may still read it.
	cmd = bytes.Clone(cmd)
	if err := fsm.Stamp(cmd, time.Now()); err != nil {
		return nil, err
	}
	f := n.raft.Apply(cmd, n.cfg.ProposeTimeout)
	if err := n.awaitApply(f); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
			return nil, fmt.Errorf("%w: %v", ErrNotLeader, err)
		case errors.Is(err, raft.ErrRaftShutdown):
			return nil, ErrShutdown
		}
		return nil, fmt.Errorf("apply %s: %w", commandName(cmd), err)
	}
	return encodeResult(f.Response())
}

// encodeResult turns a state machine result into the reply bytes that
// every node decodes the same way, whether it applied the command itself or
// forwarded it.
func encodeResult(resp interface{}) ([]byte, error) {
	switch r := resp.(type) {
	case nil:
		return nil, nil
	case error:
		return nil, r
	case *fsm.ClaimResult:
		return fsm.EncodeClaimResult(r), nil
	case *fsm.LockResult:
		return fsm.EncodeLockResult(r), nil
	case *fsm.RunUpdateResult:
		return fsm.EncodeRunUpdateResult(r), nil
	case *fsm.BatchResult:
		return encodeBatchResponse(r)
	default:
		return nil, fmt.Errorf("unexpected state machine result %T", r)
	}
}

// handleRPC serves requests from other nodes.
func (n *Node) handleRPC(ctx context.Context, m transport.Method, req []byte) ([]byte, error) {
	select {
	case <-n.shutdownCh:
		if m != methodLeave {
			return nil, ErrShutdown
		}
	default:
	}
	switch m {
	case methodApply:
		return n.serveApply(ctx, req)
	case methodLeave:
		return nil, n.removeServer(raft.ServerID(req))
	case methodStats:
		return n.serveStats(), nil
	default:
		return nil, fmt.Errorf("unknown rpc method %d; is every node on the same Interlock version?", m)
	}
}

// removeServer removes a node, by its Raft server ID, from the Raft
// configuration on the leader's behalf and remembers that its name is
// leaving, so reconcile does not re-add it.
func (n *Node) removeServer(id raft.ServerID) error {
	if n.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	name := nameOf(id)
	n.leavingMu.Lock()
	n.leaving[name] = time.Now()
	n.leavingMu.Unlock()
	if err := n.raft.RemoveServer(id, 0, n.cfg.ProposeTimeout).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return ErrNotLeader
		}
		return fmt.Errorf("remove %s from raft: %w", name, err)
	}
	n.logger.Info("removed leaving server", "server", name)
	return nil
}

// leaveRaft takes this node out of the Raft configuration: it hands over
// leadership if it has it, then asks the leader to remove it, so the
// remaining nodes keep a quorum of the shrunken configuration.
func (n *Node) leaveRaft() error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	self := n.raftID
	others, member := 0, false
	for _, s := range f.Configuration().Servers {
		if s.ID == self {
			member = true
		} else {
			others++
		}
	}
	if !member || others == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.LeaveTimeout)
	defer cancel()
	if n.IsLeader() {
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			n.logger.Warn("leadership transfer failed; removing self as leader", "error", err)
			return n.removeServer(self)
		}
	}
	backoff := 10 * time.Millisecond
	for {
		var err error
		addr, id := n.raft.LeaderWithID()
		switch {
		case id == self:
			err = n.removeServer(self)
		case id != "":
			cctx, ccancel := context.WithTimeout(ctx, n.cfg.ProposeTimeout)
			_, err = n.rpc.Call(cctx, string(addr), methodLeave, []byte(self))
			ccancel()
			err = fromRemote(err)
		default:
			err = ErrNoLeader
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("leave raft: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(backoff):
		}
		if backoff < 200*time.Millisecond {
			backoff *= 2
		}
	}
}

// awaitApply waits for an Apply future, or for this node's shutdown.
// hashicorp/raft never answers a future whose entry was committed but still
// queued for the state machine when Raft shut down, so waiting on it alone
// could hang Shutdown forever. The waiter goroutine then stays blocked on
// that future; it holds nothing else.
func (n *Node) awaitApply(f raft.ApplyFuture) error {
	done := make(chan error, 1)
	go waitFuture(f, done)
	select {
	case err := <-done:
		return err
	case <-n.shutdownCh:
		return raft.ErrRaftShutdown
	}
}

func waitFuture(f raft.ApplyFuture, done chan<- error) { done <- f.Error() }
