package fsm_test

import (
	"testing"

	"github.com/interlockraft/interlock/fsm"
)

func TestReasonString(t *testing.T) {
	tests := []struct {
		r    fsm.Reason
		want string
	}{
		{fsm.ReasonGranted, "granted"},
		{fsm.ReasonRepeat, "repeat"},
		{fsm.ReasonTaken, "taken"},
		{fsm.ReasonExpired, "expired"},
		{fsm.ReasonEarly, "early"},
		{fsm.ReasonDuplicate, "duplicate"},
		{fsm.ReasonInvalid, "invalid"},
		{fsm.ReasonBusy, "busy"},
		{fsm.ReasonPaused, "paused"},
		{fsm.ReasonSuperseded, "superseded"},
		{fsm.ReasonSuperseded + 1, "reason(10)"},
		{255, "reason(255)"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("Reason(%d).String() = %q, want %q", uint8(tt.r), got, tt.want)
		}
	}
}

func TestRunResultString(t *testing.T) {
	tests := []struct {
		r    fsm.RunResult
		want string
	}{
		{fsm.ResultSuccess, "success"},
		{fsm.ResultError, "error"},
		{fsm.ResultPanic, "panic"},
		{3, "result(3)"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("RunResult(%d).String() = %q, want %q", uint8(tt.r), got, tt.want)
		}
	}
}

func TestCommandTypeString(t *testing.T) {
	tests := []struct {
		c    fsm.CommandType
		want string
	}{
		{fsm.CommandClaim, "claim"},
		{fsm.CommandRegister, "register"},
		{0, "command(0)"},
		{fsm.CommandRuns, "runs"},
		{fsm.CommandLockAcquire, "lock-acquire"},
		{fsm.CommandLockRenew, "lock-renew"},
		{fsm.CommandLockRelease, "lock-release"},
		{fsm.CommandLockExpire, "lock-expire"},
		{fsm.CommandNodeRelease, "node-release"},
		{fsm.CommandBatch, "batch"},
		{fsm.CommandPause, "pause"},
		{fsm.CommandRunNow, "run-now"},
		{fsm.CommandClaimAnyOrder, "claim-any-order"},
		{13, "command(13)"},
		{255, "command(255)"},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("CommandType(%d).String() = %q, want %q", uint8(tt.c), got, tt.want)
		}
	}
}
