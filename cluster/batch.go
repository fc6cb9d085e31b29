package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/interlockraft/interlock/fsm"
)

// Group commit. On ordinary disks an fsync costs far more than everything
// else in a commit (in-memory stores commit the same Lock in a twentieth of
// the time), and every Raft entry costs one bolt transaction (two
// fdatasyncs) on the leader and on each follower. So the
// number of entries, not the number of commands, bounds throughput, and
// the batcher packs as many commands into each entry as it can:
//
//   - Each node has one batcher. It keeps one entry (on the leader) or one
//     forwarded batch (on a follower) in flight; everything proposed
//     meanwhile waits and goes in the next one.
//   - The leader merges what followers forward into its own entries, so
//     under load one entry carries the commands of the whole cluster.
//
// At low load a batch is a single command sent at once, so latency does not
// grow; under load the batches grow with the load.
const (
	// maxBatchCommands and maxBatchBytes bound one entry.
	maxBatchCommands = 1024
	maxBatchBytes    = 512 << 10
	// leaderDepth is how many entries the leader's batcher keeps in Raft at
	// once, and forwardDepth how many batches a follower keeps in flight to
	// the leader. Both are one. Every entry costs the same fsyncs however
	// many commands it carries, and a second entry or RPC in flight only
	// splits the commands that would have shared the next one: with 64
	// callers on three nodes, two in flight on the leader cost a third of
	// the throughput, and four on each follower half of it (docs/benchmarks.md).
	// With LogStore wal, whose writes cost one fsync, two on the leader
	// still cost 12% (median of five runs of BenchmarkLockUnlockParallel64
	// interleaved with the current settings: 25,117 against 28,404
	// pairs/s), and a maxLinger of 1 ms instead of 500µs cost 7%.
	leaderDepth  = 1
	forwardDepth = 1
	// lingerDemand and maxLinger bound the wait for a wave of commands to
	// come back (see batcher).
	lingerDemand = 8
	maxLinger    = 500 * time.Microsecond
	// proposalQueue is the batcher's queue length in groups (a caller's
	// command, or a follower's forwarded batch); submitters block beyond
	// it.
	proposalQueue = 4096
)

// batchCounts counts what this node's batcher has proposed to Raft
// itself: entries and the commands they carried. On the leader that is
// every entry the cluster commits through the batcher, so commands per
// entry says how well group commit packs. Benchmarks read it.
type batchCounts struct {
	entries, commands atomic.Uint64
}

type proposal struct {
	ctx context.Context
	cmd []byte
	// remote marks a command a follower forwarded. If this node is no
	// longer the leader it is refused with ErrNotLeader rather than
	// forwarded again, and the follower finds the new leader itself.
	remote bool
	done   chan proposalResult
}

type proposalResult struct {
	resp []byte
	err  error
}

// commandError is a state machine's error result for one command of a
// batch, carried across the wire as its message. It is final: the command
// was applied, so retrying elsewhere cannot change the answer.
type commandError struct{ msg string }

func (e *commandError) Error() string { return e.msg }

// submit proposes cmd through the node's batcher and waits for its result.
// From the moment it is queued, cmd belongs to the batcher.
func (n *Node) submit(ctx context.Context, cmd []byte) ([]byte, error) {
	p, err := n.enqueue(ctx, cmd, false)
	if err != nil {
		return nil, err
	}
	return n.await(ctx, p)
}

func (n *Node) enqueue(ctx context.Context, cmd []byte, remote bool) (*proposal, error) {
	ps, err := n.enqueueGroup(ctx, [][]byte{cmd}, remote)
	if err != nil {
		return nil, err
	}
	return ps[0], nil
}

// enqueueGroup hands cmds to the batcher in one piece, so the batcher sees
// all of them at once. A follower's forwarded batch goes in this way: were
// its commands queued one by one, the batcher could cut an entry halfway
// through them, and the follower's reply, with all its callers, would wait
// a whole round more for the rest.
func (n *Node) enqueueGroup(ctx context.Context, cmds [][]byte, remote bool) ([]*proposal, error) {
	if len(cmds) == 0 {
		return nil, nil // an empty forwarded batch: nothing to answer
	}
	ps := make([]*proposal, len(cmds))
	for i, cmd := range cmds {
		if err := n.admit(cmd, remote); err != nil { // protocol.go
			return nil, err
		}
		ps[i] = &proposal{ctx: ctx, cmd: cmd, remote: remote, done: make(chan proposalResult, 1)}
	}
	select {
	case n.proposals <- ps:
		return ps, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("propose %s: %w", commandName(cmds[0]), ctx.Err())
	case <-n.shutdownCh:
		return nil, ErrShutdown
	}
}

func (n *Node) await(ctx context.Context, p *proposal) ([]byte, error) {
	select {
	case r := <-p.done:
		return r.resp, r.err
	case <-ctx.Done():
		// The command may still be applied; callers treat this like a lost
		// reply, which every command tolerates.
		return nil, fmt.Errorf("propose %s: %w", commandName(p.cmd), ctx.Err())
	case <-n.shutdownCh:
		return nil, ErrShutdown
	}
}

// batcher runs until shutdown. It is the only goroutine that reads
// n.proposals.
//
// Under steady load, the callers whose commands were in the last entry send
// their next ones right after its reply, but the replies reach them at
// slightly different times (a follower's callers one RPC later than the
// leader's). Sending the next entry as soon as the first of them arrives
// would split that wave over two entries, and the split never heals. So
// when an entry completes, the batcher notes the demand (its size plus what
// is already waiting) and, if that was more than a handful, lingers up to
// maxLinger for the wave to come back. A lone caller never waits.
func (n *Node) batcher() {
	var pending []*proposal
	inflight, demand := 0, 0
	finished := make(chan int, max(leaderDepth, forwardDepth))
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	lingering := false
	complete := func(size int) {
		inflight--
		demand = size + len(pending)
	}
	for {
		select {
		case ps := <-n.proposals:
			pending = append(pending, ps...)
		case size := <-finished:
			complete(size)
		case <-linger.C:
			lingering, demand = false, 0 // the wave is not coming back whole
		case <-n.shutdownCh:
			linger.Stop()
			for _, p := range pending {
				p.done <- proposalResult{err: ErrShutdown}
			}
			return
		}
	drain:
		for len(pending) < maxBatchCommands*leaderDepth {
			select {
			case ps := <-n.proposals:
				pending = append(pending, ps...)
			case size := <-finished:
				complete(size)
			default:
				break drain
			}
		}
		for len(pending) > 0 && inflight < n.batchDepth() {
			if demand >= lingerDemand && len(pending)*10 < demand*9 {
				if !lingering {
					lingering = true
					linger.Reset(maxLinger)
				}
				break
			}
			if lingering {
				linger.Stop()
				lingering = false
			}
			var batch []*proposal
			batch, pending = cutBatch(pending)
			if len(batch) == 0 {
				continue
			}
			inflight++
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				n.sendBatch(batch)
				finished <- len(batch)
			}()
		}
	}
}

func (n *Node) batchDepth() int {
	if n.IsLeader() {
		return leaderDepth
	}
	return forwardDepth
}

// cutBatch takes the next entry's worth of proposals off the front of
// pending, dropping those whose callers have given up.
func cutBatch(pending []*proposal) (batch, rest []*proposal) {
	size, i := 0, 0
	for ; i < len(pending) && len(batch) < maxBatchCommands; i++ {
		p := pending[i]
		if p.ctx.Err() != nil {
			p.done <- proposalResult{err: p.ctx.Err()}
			continue
		}
		if len(batch) > 0 && size+len(p.cmd) > maxBatchBytes {
			break
		}
		size += len(p.cmd)
		batch = append(batch, p)
	}
	rest = pending[i:]
	if len(rest) == 0 {
		rest = nil // let the backing array go
	}
	return batch, rest
}

// sendBatch gets one batch committed and answers every proposal in it.
func (n *Node) sendBatch(batch []*proposal) {
	defer n.metrics.batchSent(time.Now(), n.IsLeader(), len(batch))
	if !n.IsLeader() {
		live := batch[:0]
		for _, p := range batch {
			if p.remote {
				p.done <- proposalResult{err: fmt.Errorf("%w: leadership moved while the command was queued", ErrNotLeader)}
				continue
			}
			live = append(live, p)
		}
		batch = live
	}
	if len(batch) > 0 && n.IsLeader() {
		n.batches.entries.Add(1)
		n.batches.commands.Add(uint64(len(batch)))
	}
	switch len(batch) {
	case 0:
	case 1:
		resp, err := n.propose(batch[0].ctx, batch[0].cmd)
		batch[0].done <- proposalResult{resp, err}
	default:
		n.proposeBatch(batch)
	}
}

// proposeBatch sends several proposals as one entry and answers each. The
// batch lives as long as its longest-lived caller, bounded by twice the
// ProposeTimeout, and never beyond the node's shutdown.
func (n *Node) proposeBatch(batch []*proposal) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*n.cfg.ProposeTimeout)
	defer cancel()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// Give up once every caller has, or the node shuts down.
		for _, p := range batch {
			select {
			case <-p.ctx.Done():
			case <-n.shutdownCh:
				cancel()
				return
			case <-stop:
				return
			}
		}
		cancel()
	}()
	cmds := make([][]byte, len(batch))
	for i, p := range batch {
		cmds[i] = p.cmd
	}
	resp, err := n.propose(ctx, fsm.EncodeBatch(cmds))
	var results []proposalResult
	if err == nil {
		if results, err = decodeBatchResponse(resp, len(batch)); err != nil {
			// The entry was applied, but which command got what is lost.
			err = fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
		}
	}
	for i, p := range batch {
		if err != nil {
			p.done <- proposalResult{err: err}
			continue
		}
		p.done <- results[i]
	}
}

// serveApply answers a command or batch forwarded by a follower. The
// commands join this leader's batcher, so what several followers forward
// shares entries with the leader's own commands. Its errors reach the
// follower through errorCode: a deadline or any failure other than a
// refusal to act or the state machine's verdict is an unknown outcome,
// which the follower retries.
func (n *Node) serveApply(ctx context.Context, req []byte) ([]byte, error) {
	if !n.IsLeader() {
		return nil, ErrNotLeader
	}
	// The follower stops waiting after its ProposeTimeout; so does this.
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ProposeTimeout)
	defer cancel()
	h, err := fsm.PeekHeader(req)
	if err != nil {
		return nil, err
	}
	if h.Type != fsm.CommandBatch {
		p, err := n.enqueue(ctx, req, true)
		if err != nil {
			return nil, err
		}
		return n.await(ctx, p)
	}
	cmds, err := fsm.SplitBatch(req)
	if err != nil {
		return nil, err
	}
	queued, err := n.enqueueGroup(ctx, cmds, true)
	if err != nil {
		// Nothing was queued; the follower retries the whole batch.
		return nil, err
	}
	results := make([]proposalResult, len(cmds))
	for i, p := range queued {
		resp, err := n.await(ctx, p)
		if err != nil && !final(err) {
			// Not applied, or not known to be: the whole batch goes back
			// to the follower (errorCode tells it which), which retries it.
			return nil, fmt.Errorf("command %d of %d in a forwarded batch: %w", i+1, len(cmds), err)
		}
		// A verdict is this command's answer; the others stand.
		results[i] = proposalResult{resp, err}
	}
	return encodeResults(results), nil
}

// encodeBatchResponse encodes a batch entry's state machine result.
func encodeBatchResponse(r *fsm.BatchResult) ([]byte, error) {
	results := make([]proposalResult, len(r.Results))
	for i, res := range r.Results {
		b, err := encodeResult(res)
		results[i] = proposalResult{b, err}
	}
	return encodeResults(results), nil
}

// encodeResults encodes each command's result as a status byte (0 for a
// result, 1 for an error message) and bytes.
func encodeResults(results []proposalResult) []byte {
	var out []byte
	out = binary.AppendUvarint(out, uint64(len(results)))
	for _, res := range results {
		status, b := byte(0), res.resp
		if res.err != nil {
			status, b = 1, []byte(res.err.Error())
		}
		out = append(out, status)
		out = binary.AppendUvarint(out, uint64(len(b)))
		out = append(out, b...)
	}
	return out
}

func decodeBatchResponse(b []byte, want int) ([]proposalResult, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || int(n) != want {
		return nil, fmt.Errorf("batch reply answers %d commands, want %d", n, want)
	}
	b = b[k:]
	out := make([]proposalResult, 0, want)
	for i := 0; i < want; i++ {
		if len(b) < 1 {
			return nil, errors.New("batch reply truncated")
		}
		status := b[0]
		size, k := binary.Uvarint(b[1:])
		if k <= 0 || uint64(len(b)-1-k) < size {
			return nil, errors.New("batch reply truncated")
		}
		body := b[1+k : 1+k+int(size)]
		b = b[1+k+int(size):]
		if status != 0 {
			out = append(out, proposalResult{err: &commandError{msg: string(body)}})
			continue
		}
		out = append(out, proposalResult{resp: body})
	}
	return out, nil
}
