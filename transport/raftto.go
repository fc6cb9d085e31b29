package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/hashicorp/raft"
)

// Raft streams addressed to a server. hashicorp/raft sends its RPCs to an
// address and names only the sender: whatever process holds a peer's
// address gets the peer's AppendEntries. When an address is reused (a pod
// IP handed to a node of another cluster, a port handed to another
// process on one host), that process took the stale peer's leader as its
// own and would have had its log overwritten by it, while that leader,
// hearing answers, counted its dead peer as alive and never removed it. A
// CI run saw exactly that between two test clusters on one host.
//
// So a stream dialed for a known server (an address from RaftTarget) is of
// KindRaftTo: after the kind byte comes the server ID it is meant for, a
// two-byte big-endian length and the ID, and the accepting node answers
// one byte before Raft speaks: targetOK if the ID is its own, or
// targetWrong followed by its own ID in the same framing, and it closes
// the stream. A node of a build that predates KindRaftTo closes the stream
// at the unknown kind; the dialer then dials again with KindRaft, so a
// rolling upgrade keeps working, unchecked until both ends are new.

const (
	// targetOK answers a KindRaftTo stream meant for the accepting server.
	targetOK byte = 0
	// targetWrong answers one meant for another server.
	targetWrong byte = 1
	// maxTargetLen bounds the server ID a KindRaftTo stream may name.
	maxTargetLen = 1024
)

// targetSep separates the address from the server ID in a RaftTarget
// address. No TCP address contains it; a server ID may.
const targetSep = "/"

// RaftTarget returns the address a Raft transport dials to reach server id
// at addr through a RaftLayer: the stream then names id, and is refused by
// a process at addr that serves another ID. The result is only for
// RaftLayer.Dial; Raft's configuration keeps the plain address.
func RaftTarget(id raft.ServerID, addr raft.ServerAddress) raft.ServerAddress {
	if id == "" {
		return addr
	}
	return addr + targetSep + raft.ServerAddress(id)
}

// splitTarget undoes RaftTarget.
func splitTarget(a raft.ServerAddress) (addr string, id raft.ServerID, ok bool) {
	s := string(a)
	i := strings.Index(s, targetSep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], raft.ServerID(s[i+len(targetSep):]), true
}

// writeID writes a server ID in the KindRaftTo framing.
func writeID(w io.Writer, prefix []byte, id raft.ServerID) error {
	if len(id) > maxTargetLen {
		return fmt.Errorf("server ID of %d bytes is longer than %d", len(id), maxTargetLen)
	}
	b := make([]byte, 0, len(prefix)+2+len(id))
	b = append(b, prefix...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(id)))
	b = append(b, id...)
	_, err := w.Write(b)
	return err
}

// readID reads a server ID in the KindRaftTo framing.
func readID(r io.Reader) (raft.ServerID, error) {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", err
	}
	l := binary.BigEndian.Uint16(n[:])
	if l > maxTargetLen {
		return "", fmt.Errorf("server ID of %d bytes is longer than %d", l, maxTargetLen)
	}
	b := make([]byte, l)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return raft.ServerID(b), nil
}

// admitTarget is the Mux's check of a KindRaftTo stream accepted by a
// layer serving server ID self: it reads the ID the stream is meant for
// and answers it. It runs within the Mux's handshake deadline.
func (l *RaftLayer) admitTarget(conn net.Conn) error {
	want, err := readID(conn)
	if err != nil {
		l.badTarget.log("remote", conn.RemoteAddr(), "error", err)
		return err
	}
	if l.id == "" || want == l.id {
		_, err := conn.Write([]byte{targetOK})
		return err
	}
	l.wrongTarget.log("remote", conn.RemoteAddr(), "meant_for", want, "server", l.id)
	_ = writeID(conn, []byte{targetWrong}, l.id)
	return fmt.Errorf("%w: stream for %q", ErrWrongServer, want)
}

// errOldPeer means the peer closed a KindRaftTo stream without answering,
// as a build that predates it does at the unknown kind.
var errOldPeer = errors.New("peer closed the stream at its kind")

// confirmTarget writes the server ID a KindRaftTo stream is meant for and
// reads the answer. It returns errOldPeer if the peer closed the stream
// unanswered, and an error wrapping ErrWrongServer, naming the ID that
// answered, if another server holds the address.
func confirmTarget(conn net.Conn, addr string, id raft.ServerID) error {
	if err := writeID(conn, nil, id); err != nil {
		return fmt.Errorf("name server %q to %s: %w", id, addr, err)
	}
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			return errOldPeer
		}
		return fmt.Errorf("read %s's answer to a stream for server %q: %w", addr, id, err)
	}
	switch b[0] {
	case targetOK:
		return nil
	case targetWrong:
		other, err := readID(conn)
		if err != nil {
			other = "?"
		}
		return fmt.Errorf("%w: %s is server %q, not %q; the Raft configuration holds a stale address for %q", ErrWrongServer, addr, other, id, id)
	default:
		return fmt.Errorf("%s answered a stream for server %q with unknown byte %d", addr, id, b[0])
	}
}
