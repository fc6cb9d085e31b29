package fsm_test

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/fsm"
)

func TestCommandProtocol(t *testing.T) {
	tests := []struct {
		t    fsm.CommandType
		want int
	}{
		{fsm.CommandClaim, fsm.ProtocolBase},
		{fsm.CommandRegister, fsm.ProtocolBase},
		{fsm.CommandRuns, fsm.ProtocolBase},
		{fsm.CommandLockAcquire, fsm.ProtocolBase},
		{fsm.CommandLockRenew, fsm.ProtocolBase},
		{fsm.CommandLockRelease, fsm.ProtocolBase},
		{fsm.CommandLockExpire, fsm.ProtocolBase},
		{fsm.CommandNodeRelease, fsm.ProtocolBase},
		{fsm.CommandBatch, fsm.ProtocolBase},
		{fsm.CommandPause, fsm.ProtocolJobControl},
		{fsm.CommandRunNow, fsm.ProtocolJobControl},
		{fsm.CommandClaimAnyOrder, fsm.ProtocolAnyOrder},
		{fsm.CommandType(13), 0},
		{fsm.CommandType(0), 0},
	}
	for _, tt := range tests {
		if got := tt.t.Protocol(); got != tt.want {
			t.Errorf("%s.Protocol() = %d, want %d", tt.t, got, tt.want)
		}
		if tt.want > fsm.ProtocolVersion {
			t.Errorf("%s needs protocol %d, above this build's %d", tt.t, tt.want, fsm.ProtocolVersion)
		}
	}
}

// TestUnknownCommandHalts applies an entry of a type this build does not
// know, as a newer leader would commit: the state machine must stop there,
// refuse every later entry and every snapshot, tell its notifier once, and
// keep AppliedIndex at the last entry it applied.
func TestUnknownCommandHalts(t *testing.T) {
	f := populated(t)
	told := make(chan error, 2)
	f.SetHaltNotifier(func(err error) { told <- err })
	newer := header(1, 13)
	out := f.Apply(&raft.Log{Index: 8, Type: raft.LogCommand, Data: newer})
	err, _ := out.(error)
	if !errors.Is(err, fsm.ErrHalted) || !errors.Is(err, fsm.ErrUnknownCommand) {
		t.Fatalf("Apply of command type 13 = %v, want ErrHalted wrapping ErrUnknownCommand", out)
	}
	select {
	case got := <-told:
		if !errors.Is(got, fsm.ErrHalted) {
			t.Errorf("notifier told %v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("halt notifier not called")
	}
	jobs := f.Jobs()
	later := fsm.EncodeClaims(fsm.ClaimBatch{Node: "n1", Claims: []fsm.Claim{claim("alpha", 20)}})
	if err := fsm.Stamp(later, time.Unix(0, at(20))); err != nil {
		t.Fatal(err)
	}
	out = f.Apply(&raft.Log{Index: 9, Type: raft.LogCommand, Data: later})
	if err, _ := out.(error); !errors.Is(err, fsm.ErrHalted) {
		t.Errorf("Apply of a claim after the halt = %v, want ErrHalted", out)
	}
	if _, granted := f.Jobs()["alpha"]; !granted || f.Jobs()["alpha"] != jobs["alpha"] {
		t.Errorf("claim applied after the halt: %+v", f.Jobs()["alpha"])
	}
	if f.AppliedIndex() != 7 {
		t.Errorf("AppliedIndex = %d after the halt, want 7", f.AppliedIndex())
	}
	if _, err := f.Snapshot(); !errors.Is(err, fsm.ErrHalted) {
		t.Errorf("Snapshot after the halt = %v, want ErrHalted", err)
	}
	select {
	case err := <-told:
		t.Errorf("notifier called twice, second with %v", err)
	default:
	}
}
