package cluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"

	"github.com/interlockraft/interlock/transport"
)

// The stats RPC (methodStats) gives the leader's autopilot each server's
// own view of its Raft health, as Consul's and Nomad's servers report it.

// statsSize is the length of a methodStats reply: last contact in
// nanoseconds (negative when never), last log term, last log index.
const statsSize = 24

// localStats is this node's own entry for FetchServerStats and for the
// methodStats reply.
func (n *Node) localStats() autopilot.ServerStats {
	st := autopilot.ServerStats{LastContact: -1, LastIndex: n.raft.LastIndex()}
	if n.raft.State() == raft.Leader {
		st.LastContact = 0
	} else if t := n.raft.LastContact(); !t.IsZero() {
		st.LastContact = time.Since(t)
	}
	if term, err := strconv.ParseUint(n.raft.Stats()["last_log_term"], 10, 64); err == nil {
		st.LastTerm = term
	}
	return st
}

// serveStats answers methodStats with this node's localStats. A request
// names the server it is meant for (its Raft server ID) and is refused if
// that is not this node: the asker is looking for a server whose address
// this node now holds, as after the server died and a node of another
// cluster, or a new incarnation, took its port. Answering would make the
// dead server look healthy to the leader's autopilot, which then never
// removes it. An empty request, from a build that named no server, is
// answered.
func (n *Node) serveStats(req []byte) ([]byte, error) {
	if len(req) > 0 && raft.ServerID(req) != n.raftID {
		return nil, fmt.Errorf("%w: stats asked of server %q, but this address is server %q", transport.ErrWrongServer, req, n.raftID)
	}
	st := n.localStats()
	b := make([]byte, statsSize)
	binary.BigEndian.PutUint64(b[0:], uint64(int64(st.LastContact)))
	binary.BigEndian.PutUint64(b[8:], st.LastTerm)
	binary.BigEndian.PutUint64(b[16:], st.LastIndex)
	return b, nil
}

// fetchStats asks server id, at addr, for its Raft stats. It fails if
// another server answers at addr (see serveStats).
func (n *Node) fetchStats(ctx context.Context, addr string, id raft.ServerID) (autopilot.ServerStats, error) {
	b, err := n.rpc.Call(ctx, addr, methodStats, []byte(id))
	if err != nil {
		return autopilot.ServerStats{}, fromRemote(err)
	}
	if len(b) != statsSize {
		return autopilot.ServerStats{}, fmt.Errorf("stats reply from %s is %d bytes, want %d; is every node on the same Interlock version?", addr, len(b), statsSize)
	}
	return autopilot.ServerStats{
		LastContact: time.Duration(int64(binary.BigEndian.Uint64(b[0:]))),
		LastTerm:    binary.BigEndian.Uint64(b[8:]),
		LastIndex:   binary.BigEndian.Uint64(b[16:]),
	}, nil
}
