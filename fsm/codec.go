package fsm

import (
	"encoding/binary"
	"fmt"
)

// encoder appends Interlock's binary primitives to a byte slice. Lengths and
// counts are uvarints so that short job names cost one byte of overhead.
type encoder struct {
	buf []byte
}

func (e *encoder) byte(b byte) { e.buf = append(e.buf, b) }

func (e *encoder) uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }

func (e *encoder) varint(v int64) { e.buf = binary.AppendVarint(e.buf, v) }

func (e *encoder) fixed64(v int64) { e.buf = binary.BigEndian.AppendUint64(e.buf, uint64(v)) }

func (e *encoder) string(s string) {
	e.uvarint(uint64(len(s)))
	e.buf = append(e.buf, s...)
}

func (e *encoder) bool(b bool) {
	if b {
		e.byte(1)
		return
	}
	e.byte(0)
}

// decoder reads what encoder wrote. The first error sticks, so callers decode
// a whole structure and check err once; no method panics on short or hostile
// input, because a corrupt entry must become an error, never a crash.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or malformed %s", ErrMalformed, what)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.buf) < 1 {
		d.fail("byte")
		return 0
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	return b
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) fixed64() int64 {
	if d.err != nil || len(d.buf) < 8 {
		d.fail("fixed64")
		return 0
	}
	v := binary.BigEndian.Uint64(d.buf)
	d.buf = d.buf[8:]
	return int64(v)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if uint64(len(d.buf)) < n {
		d.fail("string")
		return ""
	}
	s := string(d.buf[:n])
	d.buf = d.buf[n:]
	return s
}

// bytes reads a string as string does, but returns a view into the
// buffer instead of a copy.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if uint64(len(d.buf)) < n {
		d.fail("string")
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}

// stringLike reads a string as string does, but returns prev itself, not a
// new copy, when the bytes equal it.
func (d *decoder) stringLike(prev string) string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if uint64(len(d.buf)) < n {
		d.fail("string")
		return ""
	}
	b := d.buf[:n]
	d.buf = d.buf[n:]
	if string(b) == prev {
		return prev
	}
	return string(b)
}

func (d *decoder) bool() bool { return d.byte() != 0 }

// count reads a collection length and rejects one that could not possibly fit
// in the rest of the buffer, so a corrupt length cannot make us allocate
// gigabytes before failing.
func (d *decoder) count(minElem int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if minElem < 1 {
		minElem = 1
	}
	if n > uint64(len(d.buf)/minElem) {
		d.fail("count")
		return 0
	}
	return int(n)
}
