package cluster

import (
	"fmt"
	"log"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// raftShutdownNoise lists the Warn and Error messages hashicorp/raft writes
// because of this node's own graceful leave. They are expected then, and
// logged at Debug so that a graceful shutdown logs nothing above Info; at
// any other time they keep their level. Add a message here only with the
// step of the leave that causes it.
var raftShutdownNoise = []string{
	// leaveRaft removed this node from the configuration; its election
	// timer still fires until Raft stops.
	"not part of stable configuration, aborting election",
	"heartbeat timeout reached, not part of a stable configuration or a non-voter, not triggering a leader election",
	// leaveRaft handed leadership over; the old leader's replication to the
	// new one then meets the new term, and as a follower it is told to
	// commit entries it already applied as leader.
	"peer has newer term, stopping replication",
	"skipping application of old log",
	// close stopped the network transport while a peer's RPC was being
	// handed to Raft ("transport shutdown").
	"failed to decode incoming command",
}

// raftPeersGoneNoise lists the Warn and Error messages hashicorp/raft
// writes when its peers stop answering. While this node is leaving and
// every other member is stopping too (Node.othersStopping: a whole service
// removed at once), the peers are going the same way on purpose, and these
// are logged at Debug; at any other time they keep their level.
var raftPeersGoneNoise = []string{
	"failed to heartbeat to",
	"failed to appendEntries to",
	"failed to contact",
	"failed to contact quorum of nodes, stepping down",
	"failed to make requestVote RPC",
	"heartbeat timeout reached, starting election",
	"Election timeout reached, restarting election",
}

// leavingLogger is the logger Raft gets. It writes every line through,
// except the raftShutdownNoise messages once this node's shutdown has
// begun (leaving reports that), and the raftPeersGoneNoise ones once it
// has begun while every other member stops too (alone reports that),
// which it writes at Debug. It is safe for concurrent use, as the
// hclog.Logger it wraps.
type leavingLogger struct {
	hclog.Logger
	leaving func() bool
	alone   func() bool
}

func (l leavingLogger) Log(level hclog.Level, msg string, args ...any) {
	if level > hclog.Info && slices.Contains(raftShutdownNoise, msg) && l.leaving() {
		level = hclog.Debug
	}
	if level > hclog.Info && l.alone != nil && slices.Contains(raftPeersGoneNoise, msg) && l.leaving() && l.alone() {
		level = hclog.Debug
	}
	if level == hclog.Warn && isFirstElection(msg, args) {
		level = hclog.Info
	}
	l.Logger.Log(level, msg, args...)
}

// isFirstElection reports whether a Raft line announces an election by a
// node that has never known a leader: every new cluster, and every node
// started after a full stop, holds one. hashicorp/raft logs it at Warn, the
// same as an election after a lost leader, which is worth a Warn; the first
// one is routine and stays at Info.
func isFirstElection(msg string, args []any) bool {
	if msg != "heartbeat timeout reached, starting election" {
		return false
	}
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && k == "last-leader-id" {
			return fmt.Sprint(args[i+1]) == ""
		}
	}
	return false
}

func (l leavingLogger) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l leavingLogger) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

func (l leavingLogger) With(args ...any) hclog.Logger {
	return leavingLogger{l.Logger.With(args...), l.leaving, l.alone}
}

func (l leavingLogger) Named(name string) hclog.Logger {
	return leavingLogger{l.Logger.Named(name), l.leaving, l.alone}
}

func (l leavingLogger) ResetNamed(name string) hclog.Logger {
	return leavingLogger{l.Logger.ResetNamed(name), l.leaving, l.alone}
}

// memberlistLog adapts memberlist's "[LEVEL] memberlist: ..." lines to
// hclog at the same level. memberlist's Shutdown closes its sockets without
// waiting for a probe or gossip round in flight, which then fails writing to
// them ("use of closed network connection") or reports its peer unreachable,
// possibly after Shutdown returned. So once this node has shut memberlist
// down (closed is set), everything memberlist still says is about its own
// teardown and is written at Debug.
type memberlistLog struct {
	logger hclog.Logger
	closed *atomic.Bool
}

var memberlistLevels = []struct {
	tag   string
	level hclog.Level
}{
	{"[TRACE]", hclog.Trace},
	{"[DEBUG]", hclog.Debug},
	{"[INFO]", hclog.Info},
	{"[WARN]", hclog.Warn},
	{"[ERR]", hclog.Error},
	{"[ERROR]", hclog.Error},
}

// Write logs one line; memberlist's *log.Logger writes each line at once.
func (w memberlistLog) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\n")
	level := hclog.Info
	for _, l := range memberlistLevels {
		if rest, ok := strings.CutPrefix(msg, l.tag); ok {
			level, msg = l.level, strings.TrimSpace(rest)
			break
		}
	}
	if level > hclog.Info && w.closed.Load() {
		level = hclog.Debug
	}
	w.logger.Log(level, msg)
	return len(p), nil
}

// newMemberlistLogger returns the *log.Logger memberlist writes to.
func newMemberlistLogger(logger hclog.Logger, closed *atomic.Bool) *log.Logger {
	return log.New(memberlistLog{logger: logger, closed: closed}, "", 0)
}
