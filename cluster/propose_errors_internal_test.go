package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/fsm"
	"github.com/interlockraft/interlock/transport"
)

// TestLeaderErrorClasses sends each class of error a leader can answer a
// forwarded command with through errorCode and fromRemote, as the wire
// does, and checks what the follower makes of it: only the state
// machine's verdicts are final; a refusal to act is retried; everything
// else is an unknown outcome, which is retried too and never reported as a
// refusal.
func TestLeaderErrorClasses(t *testing.T) {
	tests := []struct {
		name  string
		err   error // as the leader's handler returns it
		code  uint16
		is    error // the sentinel the follower's error must wrap
		final bool
	}{
		{"malformed command", fmt.Errorf("claim entry 7: %w: truncated claims", fsm.ErrMalformed), codeMalformed, fsm.ErrMalformed, true},
		{"unknown command type", fmt.Errorf("%w: type 99 at index 7", fsm.ErrUnknownCommand), codeUnknownCommand, fsm.ErrUnknownCommand, true},
		{"unsupported encoding", fmt.Errorf("%w: 9", fsm.ErrUnsupportedVersion), codeUnsupportedVersion, fsm.ErrUnsupportedVersion, true},
		{"not the leader", ErrNotLeader, codeNotLeader, ErrNotLeader, false},
		{"leadership moved while queued", fmt.Errorf("%w: leadership moved while the command was queued", ErrNotLeader), codeNotLeader, ErrNotLeader, false},
		{"leader shutting down", ErrShutdown, codeShutdown, ErrShutdown, false},
		{"leader's deadline", fmt.Errorf("propose claim: %w", context.DeadlineExceeded), codeOutcomeUnknown, ErrOutcomeUnknown, false},
		{"leader's server closing", fmt.Errorf("propose claim: %w", context.Canceled), codeOutcomeUnknown, ErrOutcomeUnknown, false},
		{"raft enqueue timeout", fmt.Errorf("apply claim: %w: %w", ErrOutcomeUnknown, raft.ErrEnqueueTimeout), codeOutcomeUnknown, ErrOutcomeUnknown, false},
		{"raft log store failure", errors.New("failed to append to logs: disk full"), codeOutcomeUnknown, ErrOutcomeUnknown, false},
		{"batch with unknown per-command results", fmt.Errorf("command 2 of 3 in a forwarded batch: %w", fmt.Errorf("propose claim: %w", context.DeadlineExceeded)), codeOutcomeUnknown, ErrOutcomeUnknown, false},
		{"batch whose reply cannot be split", fmt.Errorf("%w: batch reply answers 2 commands, want 3", ErrOutcomeUnknown), codeOutcomeUnknown, ErrOutcomeUnknown, false},
		{"undecodable state machine result", fmt.Errorf("%w: unexpected state machine result int", ErrOutcomeUnknown), codeOutcomeUnknown, ErrOutcomeUnknown, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := final(tt.err); got != tt.final {
				t.Errorf("final(%v) on the leader = %v, want %v", tt.err, got, tt.final)
			}
			code := errorCode(tt.err)
			if code != tt.code {
				t.Fatalf("errorCode(%v) = %d, want %d", tt.err, code, tt.code)
			}
			got := fromRemote(fmt.Errorf("rpc 1 to leader: %w", &transport.RemoteError{Code: code, Message: tt.err.Error()}))
			if !errors.Is(got, tt.is) {
				t.Errorf("follower's error %q does not wrap %q", got, tt.is)
			}
			if final(got) != tt.final {
				t.Errorf("follower treats %q as final=%v, want %v", got, final(got), tt.final)
			}
			if !tt.final && errors.Is(got, ErrOutcomeUnknown) == (errors.Is(got, ErrNotLeader) || errors.Is(got, ErrShutdown)) {
				t.Errorf("follower's error %q is both or neither of a refusal to act and an unknown outcome", got)
			}
		})
	}
}

// TestRemoteCodesFromOtherVersions checks the codes a follower may get
// from a leader of another version: code 0 (what earlier versions sent for
// every error but not-leader and shutdown) and codes it does not know are
// unknown outcomes, retried, never refusals.
func TestRemoteCodesFromOtherVersions(t *testing.T) {
	for _, code := range []uint16{0, 8, 999} {
		got := fromRemote(&transport.RemoteError{Code: code, Message: "propose claim: context deadline exceeded"})
		if !errors.Is(got, ErrOutcomeUnknown) || final(got) {
			t.Errorf("code %d: follower's error %q (final=%v), want a retried ErrOutcomeUnknown", code, got, final(got))
		}
	}
}

// TestCommandErrorInBatchIsFinal checks that a command's own error inside a
// batch result, the state machine's verdict on that command alone, is
// final, and that the other results of the batch stand.
func TestCommandErrorInBatchIsFinal(t *testing.T) {
	reply := encodeResults([]proposalResult{
		{resp: []byte("granted")},
		{err: fmt.Errorf("claim entry 9: %w: truncated claims", fsm.ErrMalformed)},
	})
	results, err := decodeBatchResponse(reply, 2)
	if err != nil {
		t.Fatal(err)
	}
	if results[0].err != nil || string(results[0].resp) != "granted" {
		t.Errorf("first result = %q, %v; want granted, nil", results[0].resp, results[0].err)
	}
	if !final(results[1].err) {
		t.Errorf("a command's error inside a batch result (%v) is not final", results[1].err)
	}
	if _, err := decodeBatchResponse(reply, 3); err == nil {
		t.Error("a reply with 2 results decoded as 3")
	}
}
