package transport_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/transport"
)

// TestRaftStreamNamesItsServer checks streams dialed for a named server
// (RaftTarget): the server that holds the address gets them, with nothing
// of the naming left on the stream; another server refuses them before any
// byte reaches its Raft, and the dialer's error names both; and a build
// without KindRaftTo, which closes the stream at its kind, still gets an
// unchecked stream.
func TestRaftStreamNamesItsServer(t *testing.T) {
	f := newMux(t)
	layer, err := transport.NewRaftLayer(f.mux, f.mux.Addr(), nil, "node1")
	if err != nil {
		t.Fatal(err)
	}
	defer layer.Close()
	f.serve()

	t.Run("its own server", func(t *testing.T) {
		accepted := acceptAsync(layer)
		out, err := layer.Dial(transport.RaftTarget("node1", raft.ServerAddress(f.addr())), waitTimeout)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		defer out.Close()
		r := recv(t, accepted, "Accept")
		if r.err != nil {
			t.Fatalf("Accept: %v", r.err)
		}
		defer r.conn.Close()
		msg := []byte("raft")
		if _, err := out.Write(msg); err != nil {
			t.Fatal(err)
		}
		if got := readN(t, r.conn, len(msg)); !slices.Equal(got, msg) {
			t.Fatalf("accepted side read %q, want %q", got, msg)
		}
	})

	t.Run("another server", func(t *testing.T) {
		accepted := acceptAsync(layer)
		_, err := layer.Dial(transport.RaftTarget("node2#00ff", raft.ServerAddress(f.addr())), waitTimeout)
		if !errors.Is(err, transport.ErrWrongServer) || !strings.Contains(err.Error(), `"node1"`) || !strings.Contains(err.Error(), `"node2#00ff"`) {
			t.Fatalf("Dial for another server: %v; want ErrWrongServer naming node1 and node2#00ff", err)
		}
		// The refused stream never reached Accept; a good one does next.
		out, err := layer.Dial(raft.ServerAddress(f.addr()), waitTimeout)
		if err != nil {
			t.Fatalf("plain Dial: %v", err)
		}
		defer out.Close()
		r := recv(t, accepted, "Accept")
		if r.err != nil {
			t.Fatalf("Accept: %v", r.err)
		}
		defer r.conn.Close()
		if _, err := out.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if got := readN(t, r.conn, 1); string(got) != "x" {
			t.Fatalf("accepted the refused stream: read %q first, want the plain stream's %q", got, "x")
		}
	})

	t.Run("an older build", func(t *testing.T) {
		old := newMux(t)
		ln := old.listen(t, transport.KindRaft) // no KindRaftTo: closed at its kind
		old.serve()
		accepted := acceptAsync(ln)
		out, err := layer.Dial(transport.RaftTarget("node3", raft.ServerAddress(old.addr())), waitTimeout)
		if err != nil {
			t.Fatalf("Dial to a build without KindRaftTo: %v", err)
		}
		defer out.Close()
		r := recv(t, accepted, "Accept")
		if r.err != nil {
			t.Fatalf("Accept: %v", r.err)
		}
		defer r.conn.Close()
		if _, err := out.Write([]byte("y")); err != nil {
			t.Fatal(err)
		}
		if got := readN(t, r.conn, 1); string(got) != "y" {
			t.Fatalf("read %q, want %q", got, "y")
		}
	})
}
