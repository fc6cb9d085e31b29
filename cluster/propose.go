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
	// methodTransfer asks the leader to hand leadership to the voter the
	// request names, or, if it names none, to the best other voter
	// (Node.TransferLeadership on a follower).
	methodTransfer transport.Method = 4
)

// Wire codes for the errors a leader returns to a forwarded command. A
// code tells the follower what it may do next: retry (the command was not
// applied, or it is not known whether it was) or give up (the state
// machine's own verdict, which another attempt cannot change).
// Code 0 is what nodes of earlier versions sent for every error but the
// first two below; it is read as an unknown outcome.
const (
	codeNotLeader uint16 = 1
	codeShutdown  uint16 = 2
	// codeOutcomeUnknown marks everything that is neither a refusal to
	// act (not leader, shutting down) nor a verdict: a deadline, a Raft
	// commit or apply error, a failed enqueue, a batch whose per-command
	// results are not known.
	codeOutcomeUnknown uint16 = 3
	// The state machine's verdicts, each mapped back to its fsm sentinel.
	codeMalformed          uint16 = 4
	codeUnknownCommand     uint16 = 5
	codeUnsupportedVersion uint16 = 6
	// codeUnknownPeer answers a forwarded leadership transfer to a name
	// that is not a voter.
	codeUnknownPeer uint16 = 7
)

// verdicts pairs each state machine verdict with its wire code.
var verdicts = []struct {
	err  error
	code uint16
}{
	{fsm.ErrMalformed, codeMalformed},
	{fsm.ErrUnknownCommand, codeUnknownCommand},
	{fsm.ErrUnsupportedVersion, codeUnsupportedVersion},
}

// errorCode is the RPC server's transport.ErrorCoder. Only an error that
// is known to leave the command unapplied, or that is the state machine's
// verdict, gets a code that says so; every other error is an unknown
// outcome, which the follower retries.
func errorCode(err error) uint16 {
	for _, v := range verdicts {
		if errors.Is(err, v.err) {
			return v.code
		}
	}
	switch {
	case errors.Is(err, ErrNotLeader):
		return codeNotLeader
	case errors.Is(err, ErrShutdown):
		return codeShutdown
	case errors.Is(err, ErrUnknownPeer):
		return codeUnknownPeer
	default:
		return codeOutcomeUnknown
	}
}

// fromRemote maps a remote error back to its sentinel. Code 0 and codes it
// does not know become ErrOutcomeUnknown: a refusal must be stated, never
// inferred.
func fromRemote(err error) error {
	var re *transport.RemoteError
	if !errors.As(err, &re) {
		return err
	}
	for _, v := range verdicts {
		if re.Code == v.code {
			return fmt.Errorf("%w: %s", v.err, re.Message)
		}
	}
	switch re.Code {
	case codeNotLeader:
		return fmt.Errorf("%w: %s", ErrNotLeader, re.Message)
	case codeShutdown:
		return fmt.Errorf("%w: %s", ErrShutdown, re.Message)
	case codeUnknownPeer:
		return fmt.Errorf("%w: %s", ErrUnknownPeer, re.Message)
	default:
		return fmt.Errorf("%w: %s", ErrOutcomeUnknown, re.Message)
	}
}

// propose gets cmd committed and applied through the current leader, locally
// or by forwarding, and returns the leader's encoded result. It retries
// across leader changes and unknown outcomes until ctx ends or the node
// shuts down; only the state machine's verdict on cmd is final. A retry
// after a lost reply may apply the command twice, so every command must be
// idempotent (claims answer a repeat with the original grant, lock calls
// carry owner and call IDs, registrations and run-lease updates can be
// applied twice).
func (n *Node) propose(ctx context.Context, cmd []byte) ([]byte, error) {
	var lastErr error
	backoff := minProposeBackoff
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
		if final(err) {
			return nil, err
		}
		lastErr = err
		select {
		case <-ctx.Done():
			if errors.Is(lastErr, ErrOutcomeUnknown) {
				return nil, fmt.Errorf("propose %s: %w: %w (last error: %v)", commandName(cmd), ctx.Err(), ErrOutcomeUnknown, lastErr)
			}
			return nil, fmt.Errorf("propose %s: %w (last error: %v)", commandName(cmd), ctx.Err(), lastErr)
		case <-n.shutdownCh:
			return nil, ErrShutdown
		case <-changed:
			// A new leader (or none) is known: try it at once.
			backoff = minProposeBackoff
		case <-time.After(backoff):
			backoff = min(2*backoff, maxProposeBackoff)
		}
	}
}

// minProposeBackoff and maxProposeBackoff bound propose's wait between
// attempts on the same leader. A leader change ends the wait early.
const (
	minProposeBackoff = 5 * time.Millisecond
	maxProposeBackoff = 100 * time.Millisecond
)

func commandName(cmd []byte) string {
	h, err := fsm.PeekHeader(cmd)
	if err != nil {
		return "command"
	}
	return h.Type.String()
}

// final reports whether err is the state machine's own verdict on a
// command, which no other attempt can change: a command it cannot decode
// or does not know, or a command's error inside a batch result. Every
// other error means the command was not applied, or that it is not known
// whether it was, and another attempt, perhaps on another leader, may
// succeed.
func final(err error) bool {
	for _, v := range verdicts {
		if errors.Is(err, v.err) {
			return true
		}
	}
	var ce *commandError
	return errors.As(err, &ce)
}

// forward sends cmd to the leader at addr. It gives up early if the leader
// changes (changed closes) while it waits, and when this node shuts down,
// so neither a replaced leader nor one that never answers holds up the
// batcher or Shutdown for the ProposeTimeout; propose then retries with the
// new leader, or returns.
func (n *Node) forward(ctx context.Context, changed <-chan struct{}, addr string, cmd []byte) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, n.cfg.ProposeTimeout)
	defer cancel()
	go func() {
		select {
		case <-changed:
			cancel()
		case <-n.shutdownCh:
			cancel()
		case <-cctx.Done():
		}
	}()
	resp, err := n.rpc.Call(cctx, addr, methodApply, cmd)
	if err != nil {
		if ctx.Err() == nil && cctx.Err() != nil {
			select {
			case <-n.shutdownCh:
				return nil, fmt.Errorf("%w: while forwarding to %s", ErrShutdown, addr)
			case <-changed:
				return nil, fmt.Errorf("%w: leader changed while forwarding to %s", ErrNotLeader, addr)
			default:
			}
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
		// Anything else (an enqueue timeout, a failed log write, an entry
		// aborted by a snapshot restore) says nothing about whether the
		// entry will still commit.
		return nil, fmt.Errorf("apply %s: %w: %w", commandName(cmd), ErrOutcomeUnknown, err)
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
	case *fsm.RunNowResult:
		return fsm.EncodeRunNowResult(r), nil
	case *fsm.BatchResult:
		return encodeBatchResponse(r)
	default:
		// Applied, but with a result no node can decode: a bug, and not a
		// verdict on the command.
		return nil, fmt.Errorf("%w: unexpected state machine result %T", ErrOutcomeUnknown, r)
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
		return n.serveStats(req)
	case methodKeyring:
		return n.serveKeyring(req)
	case methodTransfer:
		return nil, n.transferLocal(ctx, string(req))
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
func (n *Node) leaveRaft(ctx context.Context) error {
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
	ctx, cancel := context.WithTimeout(ctx, n.cfg.LeaveTimeout)
	defer cancel()
	if n.IsLeader() {
		if n.othersStopping() {
			return errOthersStopping
		}
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			if n.othersStopping() {
				return errOthersStopping
			}
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
		if n.othersStopping() {
			return errOthersStopping
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

// errOthersStopping means a node stopping gracefully stays in the Raft
// configuration because no other member is left to shrink it.
var errOthersStopping = errors.New("no other member is alive and staying")

// othersStopping reports whether this node's gossip shows every other
// member leaving, left or failed, as when a whole service is removed and
// every node stops at once. Its Raft leave then cannot complete (once the
// leader leaves too, the last servers have no quorum to remove each
// other), a leadership transfer could only go to a node on its way out,
// and its gossip leave has no one to tell: none of that is a fault, and
// the configuration is best left whole for the service's next start. A
// suspect member still counts as staying.
func (n *Node) othersStopping() bool {
	for _, m := range n.members() {
		if m.Name != n.cfg.NodeName && !m.Leaving && (m.Status == StatusAlive || m.Status == StatusSuspect) {
			return false
		}
	}
	return true
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
