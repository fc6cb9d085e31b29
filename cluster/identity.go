package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// A node's Raft server ID is its NodeName when it keeps its Raft state in
// DataDir. A memory-only node (DataDir "") forgets on restart every entry
// it acknowledged and every vote it cast, so it must not come back as the
// voter it was: the entries it acknowledged may be committed on the
// strength of that acknowledgement, and a candidate lacking them could
// win with its vote. It therefore takes a fresh ID for each process, its
// name plus incarnationSep and random hex, and gossips it in its meta; the
// leader replaces the old incarnation like a stale address (reconcile).
//
// That alone is not enough, because Raft's vote requests carry no target
// ID: a candidate asks whatever process listens at the old incarnation's
// address, and hashicorp/raft grants votes while its configuration is
// empty. So a memory-only node also refuses vote and pre-vote requests
// until its own ID is a voter in its configuration (voteGuard), which only
// a leader can make it, after the old incarnation is removed.

// incarnationSep separates a memory-only node's name from its incarnation.
const incarnationSep = "#"

// incarnationHex is the length of the incarnation suffix in hex digits.
const incarnationHex = 16

// raftIDFor returns the Raft server ID a node started with cfg uses: the
// NodeName with DataDir, a fresh incarnation of it without.
func raftIDFor(cfg Config) raft.ServerID {
	if cfg.DataDir != "" {
		return raft.ServerID(cfg.NodeName)
	}
	b := make([]byte, incarnationHex/2)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return raft.ServerID(cfg.NodeName + incarnationSep + hex.EncodeToString(b))
}

// nameOf returns the NodeName of the server with Raft ID id.
func nameOf(id raft.ServerID) string {
	s := string(id)
	i := len(s) - incarnationHex - len(incarnationSep)
	if i <= 0 || !strings.HasPrefix(s[i:], incarnationSep) {
		return s
	}
	if _, err := hex.DecodeString(s[i+len(incarnationSep):]); err != nil {
		return s
	}
	return s[:i]
}

// errNotVoter answers a vote request that a memory-only node refuses.
var errNotVoter = errors.New("interlock: memory-only node is not a voter under its current incarnation")

// voteGuard is the Raft transport of a memory-only node. It passes every
// RPC through to Raft except vote and pre-vote requests that arrive while
// the node's own ID is not a voter in its configuration; those it answers
// with errNotVoter, which the candidate counts as no vote. Raft reads
// Consumer from its own goroutines; the guard's loop is the node's.
type voteGuard struct {
	targetedTransport
	id    raft.ServerID
	raft  atomic.Pointer[raft.Raft]
	rpcCh chan raft.RPC
}

func newVoteGuard(t targetedTransport, id raft.ServerID) *voteGuard {
	return &voteGuard{targetedTransport: t, id: id, rpcCh: make(chan raft.RPC)}
}

// Consumer returns the channel of RPCs that passed the guard.
func (g *voteGuard) Consumer() <-chan raft.RPC { return g.rpcCh }

// run moves RPCs from the network transport to Raft until done closes.
func (g *voteGuard) run(done <-chan struct{}) {
	in := g.NetworkTransport.Consumer()
	for {
		select {
		case rpc := <-in:
			switch rpc.Command.(type) {
			case *raft.RequestVoteRequest, *raft.RequestPreVoteRequest:
				if !g.mayVote() {
					rpc.Respond(nil, errNotVoter)
					continue
				}
			}
			select {
			case g.rpcCh <- rpc:
			case <-done:
				return
			}
		case <-done:
			return
		}
	}
}

// mayVote reports whether this incarnation is a voter in its own latest
// configuration.
func (g *voteGuard) mayVote() bool {
	r := g.raft.Load()
	if r == nil {
		return false
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == g.id {
			return s.Suffrage == raft.Voter
		}
	}
	return false
}
