package fsm

import "fmt"

// CommandBatch packs several commands, proposed concurrently on one node,
// into one entry. They are applied in order with the batch's index and
// leader time, and answered one by one.
const CommandBatch CommandType = 9

// EncodeBatch packs encoded commands into one entry. Their own headers'
// times are ignored: the leader stamps the batch.
func EncodeBatch(cmds [][]byte) []byte {
	size := 4
	for _, c := range cmds {
		size += len(c) + 3
	}
	e := newEncoder(CommandBatch, size)
	e.uvarint(uint64(len(cmds)))
	for _, c := range cmds {
		e.uvarint(uint64(len(c)))
		e.buf = append(e.buf, c...)
	}
	return e.buf
}

// SplitBatch returns the commands packed in an encoded CommandBatch entry,
// as sub-slices of entry. The leader uses it to merge batches forwarded by
// followers into its own entries.
func SplitBatch(entry []byte) ([][]byte, error) {
	d := &decoder{buf: entry}
	h, err := readHeader(d)
	if err != nil {
		return nil, err
	}
	if h.Type != CommandBatch {
		return nil, fmt.Errorf("%w: entry is a %s, not a batch", ErrMalformed, h.Type)
	}
	return decodeBatch(d)
}

func decodeBatch(d *decoder) ([][]byte, error) {
	n := d.count(headerLen + 1)
	cmds := make([][]byte, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		size := d.uvarint()
		if d.err != nil {
			break
		}
		if uint64(len(d.buf)) < size || size < headerLen {
			d.fail("batch element")
			break
		}
		cmds = append(cmds, d.buf[:size])
		d.buf = d.buf[size:]
	}
	return cmds, d.err
}

// BatchResult answers a batch: one result per command, in order, each what
// applying that command alone would have returned (*ClaimResult,
// *LockResult, *RunUpdateResult, nil, or an error).
type BatchResult struct {
	Results []interface{}
}

// applyBatch applies every command of a batch. A batch nested in a batch
// is refused, so a hostile entry cannot recurse.
func (f *FSM) applyBatch(index uint64, now int64, d *decoder) interface{} {
	cmds, err := decodeBatch(d)
	if err != nil {
		return fmt.Errorf("batch entry %d: %w", index, err)
	}
	res := &BatchResult{Results: make([]interface{}, len(cmds))}
	for i, cmd := range cmds {
		sd := &decoder{buf: cmd}
		h, err := readHeader(sd)
		switch {
		case err != nil:
			res.Results[i] = fmt.Errorf("batch entry %d, command %d: %w", index, i, err)
		case h.Type == CommandBatch:
			res.Results[i] = fmt.Errorf("%w: batch nested in batch entry %d", ErrMalformed, index)
		default:
			res.Results[i] = f.applyCommand(index, now, h.Type, sd)
		}
	}
	return res
}
