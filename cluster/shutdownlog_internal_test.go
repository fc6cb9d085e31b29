package cluster

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TestFirstElectionIsInfo checks that Raft's election line is a Warn only
// when the node had known a leader before, as after a lost leader.
func TestFirstElectionIsInfo(t *testing.T) {
	cases := []struct {
		name    string
		args    []any
		wantTag string
	}{
		{"never had a leader", []any{"last-leader-addr", raft.ServerAddress(""), "last-leader-id", raft.ServerID("")}, "[INFO]"},
		{"lost its leader", []any{"last-leader-addr", raft.ServerAddress("127.0.0.1:7947"), "last-leader-id", raft.ServerID("n1")}, "[WARN]"},
		{"no leader key", nil, "[WARN]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			base := hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Trace})
			l := leavingLogger{Logger: base, leaving: func() bool { return false }}
			l.Warn("heartbeat timeout reached, starting election", tc.args...)
			if !strings.Contains(out.String(), tc.wantTag) {
				t.Fatalf("got %q, want a %s line", out.String(), tc.wantTag)
			}
		})
	}
}

// TestShutdownNoiseIsDebugOnlyWhileLeaving checks that a message caused by
// this node's own leave, such as the network transport's decode failure
// when close cuts off a peer's RPC, is written at Debug while the node
// leaves and keeps its level otherwise.
func TestShutdownNoiseIsDebugOnlyWhileLeaving(t *testing.T) {
	cases := []struct {
		name    string
		leaving bool
		alone   bool // every other member stopping too
		msg     string
		wantTag string
	}{
		{"decode failure while leaving", true, false, "failed to decode incoming command", "[DEBUG]"},
		{"decode failure otherwise", false, false, "failed to decode incoming command", "[ERROR]"},
		{"other error while leaving", true, false, "failed to contact quorum", "[ERROR]"},
		{"peer gone while all leave", true, true, "failed to heartbeat to", "[DEBUG]"},
		{"peer gone while this node alone leaves", true, false, "failed to heartbeat to", "[ERROR]"},
		{"peer gone while staying", false, true, "failed to heartbeat to", "[ERROR]"},
		{"other error while all leave", true, true, "failed to contact quorum", "[ERROR]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			base := hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Trace})
			l := leavingLogger{Logger: base, leaving: func() bool { return tc.leaving }, alone: func() bool { return tc.alone }}
			l.Named("raft-net").Error(tc.msg, "error", "transport shutdown")
			if !strings.Contains(out.String(), tc.wantTag) {
				t.Fatalf("got %q, want a %s line", out.String(), tc.wantTag)
			}
		})
	}
}
