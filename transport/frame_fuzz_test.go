package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// FuzzReadFrame reads arbitrary bytes as a stream of RPC frames. Whatever
// the input, readFrame must not panic, must never return a body longer than
// maxFrame or than the bytes that arrived, and every frame it returns must
// write back to exactly the bytes it consumed. Seeds: well-formed frames
// plus testdata/fuzz/FuzzReadFrame.
func FuzzReadFrame(f *testing.F) {
	frame := func(tag byte, body []byte) []byte {
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		_ = writeFrame(w, tag, body)
		_ = w.Flush()
		return b.Bytes()
	}
	f.Add(frame(1, []byte("hello")))
	f.Add(frame(0, nil))
	f.Add(append(frame(2, []byte("a")), frame(3, bytes.Repeat([]byte{'b'}, 300))...))
	f.Add(binary.AppendUvarint([]byte{1}, maxFrame+1))
	f.Add(binary.AppendUvarint([]byte{1}, maxFrame))

	f.Fuzz(func(t *testing.T, data []byte) {
		src := bytes.NewReader(data)
		r := bufio.NewReader(src)
		consumed := func() int { return len(data) - src.Len() - r.Buffered() }
		for {
			start := consumed()
			tag, body, err := readFrame(r)
			if err != nil {
				if errors.Is(err, io.EOF) && start != len(data) {
					t.Fatalf("clean EOF after %d of %d bytes: a truncated frame must be io.ErrUnexpectedEOF", start, len(data))
				}
				return
			}
			end := consumed()
			if len(body) > maxFrame || end-start < 2+len(body) {
				t.Fatalf("body of %d bytes from a frame of %d bytes", len(body), end-start)
			}
			if data[start] != tag || !bytes.Equal(body, data[end-len(body):end]) {
				t.Fatalf("frame at %d decoded as tag %d body %q, input %q", start, tag, body, data[start:end])
			}
		}
	})
}
