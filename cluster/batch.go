package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/interlockraft/interlock/fsm"
)

// Group commit: proposals made concurrently on one node share Raft
// entries. A few workers each take the next proposal and everything queued
// behind it, up to maxBatch, and propose them as one fsm.CommandBatch. At
// low load a batch is a single command sent at once, so latency does not
// grow; under load the batches grow, which turns many fsyncs and RPCs into
// one.
const (
	batchWorkers = 4
	maxBatch     = 256
)

type proposal struct {
	ctx  context.Context
	cmd  []byte
	done chan proposalResult
}

type proposalResult struct {
	resp []byte
	err  error
}

// submit proposes cmd through the node's batcher.
// From the moment it is queued, cmd belongs to the batcher: the leader
// stamps its time in place.
func (n *Node) submit(ctx context.Context, cmd []byte) ([]byte, error) {
	name := commandName(cmd)
	p := &proposal{ctx: ctx, cmd: cmd, done: make(chan proposalResult, 1)}
	select {
	case n.proposals <- p:
	case <-ctx.Done():
		return nil, fmt.Errorf("propose %s: %w", name, ctx.Err())
	case <-n.shutdownCh:
		return nil, ErrShutdown
	}
	select {
	case r := <-p.done:
		return r.resp, r.err
	case <-ctx.Done():
		// The command may still be applied; callers treat this like a lost
		// reply, which every command tolerates.
		return nil, fmt.Errorf("propose %s: %w", name, ctx.Err())
	}
}

// batchWorker runs until shutdown.
func (n *Node) batchWorker() {
	for {
		var first *proposal
		select {
		case first = <-n.proposals:
		case <-n.shutdownCh:
			return
		}
		batch := []*proposal{first}
	drain:
		for len(batch) < maxBatch {
			select {
			case p := <-n.proposals:
				batch = append(batch, p)
			default:
				break drain
			}
		}
		live := batch[:0]
		for _, p := range batch {
			if p.ctx.Err() == nil {
				live = append(live, p)
			}
		}
		switch len(live) {
		case 0:
		case 1:
			resp, err := n.propose(live[0].ctx, live[0].cmd)
			live[0].done <- proposalResult{resp, err}
		default:
			n.proposeBatch(live)
		}
	}
}

// proposeBatch sends several proposals as one entry and answers each. The
// batch lives as long as its longest-lived caller, bounded by the
// ProposeTimeout.
func (n *Node) proposeBatch(batch []*proposal) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*n.cfg.ProposeTimeout)
	defer cancel()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// Give up once every caller has.
		for _, p := range batch {
			select {
			case <-p.ctx.Done():
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
		results, err = decodeBatchResponse(resp, len(batch))
	}
	for i, p := range batch {
		if err != nil {
			p.done <- proposalResult{err: err}
			continue
		}
		p.done <- results[i]
	}
}

// encodeBatchResponse encodes each command's result as a status byte (0
// for a result, 1 for an error message) and bytes.
func encodeBatchResponse(r *fsm.BatchResult) ([]byte, error) {
	var out []byte
	out = binary.AppendUvarint(out, uint64(len(r.Results)))
	for _, res := range r.Results {
		b, err := encodeResult(res)
		status := byte(0)
		if err != nil {
			status, b = 1, []byte(err.Error())
		}
		out = append(out, status)
		out = binary.AppendUvarint(out, uint64(len(b)))
		out = append(out, b...)
	}
	return out, nil
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
			out = append(out, proposalResult{err: errors.New(string(body))})
			continue
		}
		out = append(out, proposalResult{resp: body})
	}
	return out, nil
}
