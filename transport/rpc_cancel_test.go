package transport_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/interlockraft/interlock/transport"
)

// TestCallCancelledWhilePeerIsSilent checks that Call returns once its ctx
// is cancelled (no deadline) when the peer accepted the connection but
// never reads or answers, as a frozen process does: mid-write, with a
// request larger than the socket buffers, and mid-read, with a small one.
// A node's Kill relies on it to end its forwards.
func TestCallCancelledWhilePeerIsSilent(t *testing.T) {
	for _, tt := range []struct {
		name string
		size int
	}{
		{"mid-read", 16},
		{"mid-write", 32 << 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				conn, err := ln.Accept()
				if err == nil {
					accepted <- conn // held open, never read
				}
			}()
			c := transport.NewClient(nil)
			defer c.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			res := callAsync(c, ctx, ln.Addr().String(), 1, make([]byte, tt.size))
			conn := recv(t, accepted, "the connection")
			defer conn.Close()
			select {
			case r := <-res:
				t.Fatalf("Call returned before its ctx ended: %q, %v", r.resp, r.err)
			case <-time.After(100 * time.Millisecond):
			}
			cancel()
			r := recv(t, res, "Call to return after its ctx was cancelled")
			if !errors.Is(r.err, context.Canceled) {
				t.Fatalf("Call error = %v, want one wrapping context.Canceled", r.err)
			}
		})
	}
}
