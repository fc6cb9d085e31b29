package fsm_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/fsm"
)

// header returns a version-1 header of the given type, unstamped.
func header(version, typ byte) []byte {
	return append([]byte{version, typ}, make([]byte, 8)...)
}

type malformedCase struct {
	name string
	data []byte
	want error
}

// malformedEntries lists entries Apply must reject, and the sentinel each
// error must wrap.
func malformedEntries() []malformedCase {
	validClaims := fsm.EncodeClaims(fsm.ClaimBatch{Node: "n1", Claims: []fsm.Claim{claim("fresh1", 10), claim("fresh2", 10)}})
	validReg := fsm.EncodeRegistration(fsm.Registration{Node: "n1", Reset: true, Add: []string{"fresh1", "fresh2"}, Remove: []string{"alpha"}})

	cases := []malformedCase{
		{"nil", nil, fsm.ErrMalformed},
		{"version byte only", []byte{1}, fsm.ErrMalformed},
		{"header missing one byte", header(1, 1)[:9], fsm.ErrMalformed},
		{"version 0", append([]byte{0}, validClaims[1:]...), fsm.ErrUnsupportedVersion},
		{"version 2", append([]byte{2}, validClaims[1:]...), fsm.ErrUnsupportedVersion},
		{"version 255 registration", append([]byte{255}, validReg[1:]...), fsm.ErrUnsupportedVersion},
		{"command type 0", append(header(1, 0), validClaims[10:]...), fsm.ErrUnknownCommand},
		{"command type 13", header(1, 13), fsm.ErrUnknownCommand},
		{"pause without a body", header(1, byte(fsm.CommandPause)), fsm.ErrMalformed},
		{"run-now without a body", header(1, byte(fsm.CommandRunNow)), fsm.ErrMalformed},
		{"truncated lock acquire", header(1, byte(fsm.CommandLockAcquire)), fsm.ErrMalformed},
		{"command type 255", append(header(1, 255), 1, 2, 3), fsm.ErrUnknownCommand},
		{"claim header without body", header(1, 1), fsm.ErrMalformed},
		{"registration header without body", header(1, 2), fsm.ErrMalformed},
		// Node "n", then a claim count that cannot fit in what follows.
		{"claim count larger than the entry", binary.AppendUvarint(append(header(1, 1), 1, 'n'), 1<<60), fsm.ErrMalformed},
		// A node name whose length runs past the end of the entry.
		{"claim node length past the end", binary.AppendUvarint(header(1, 1), 1<<62), fsm.ErrMalformed},
		// An over-long uvarint (more than 10 bytes).
		{"claim node length overflows", append(header(1, 1), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), fsm.ErrMalformed},
		// Node "n", reset, then an add count that cannot fit.
		{"registration add count larger than the entry", binary.AppendUvarint(append(header(1, 2), 1, 'n', 0), 1<<40), fsm.ErrMalformed},
		{"garbage with version 0xee", append([]byte{0xee}, []byte("definitely not an interlock entry")...), fsm.ErrUnsupportedVersion},
	}
	// Every strict prefix of a valid entry is cut somewhere, so none may be
	// applied, not even partially.
	for n := range len(validClaims) {
		cases = append(cases, malformedCase{fmt.Sprintf("claims truncated to %d of %d bytes", n, len(validClaims)), validClaims[:n], fsm.ErrMalformed})
	}
	for n := range len(validReg) {
		cases = append(cases, malformedCase{fmt.Sprintf("registration truncated to %d of %d bytes", n, len(validReg)), validReg[:n], fsm.ErrMalformed})
	}
	return cases
}

func TestApplyMalformedLeavesStateUnchanged(t *testing.T) {
	for _, tt := range malformedEntries() {
		t.Run(tt.name, func(t *testing.T) {
			f := populated(t)
			wantJobs, wantRegs := f.Jobs(), registrations(f, append(allJobs, "fresh1", "fresh2")...)

			out := f.Apply(&raft.Log{Index: 8, Type: raft.LogCommand, Data: tt.data})
			err, ok := out.(error)
			if !ok {
				t.Fatalf("Apply returned %T (%v), want an error", out, out)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Apply error = %v, want one wrapping %v", err, tt.want)
			}
			if got := f.Jobs(); !maps.Equal(got, wantJobs) {
				t.Errorf("Jobs changed by a rejected entry:\n got %+v\nwant %+v", got, wantJobs)
			}
			if got := registrations(f, append(allJobs, "fresh1", "fresh2")...); !maps.EqualFunc(got, wantRegs, slices.Equal) {
				t.Errorf("registrations changed by a rejected entry:\n got %q\nwant %q", got, wantRegs)
			}
			// A malformed entry is consumed from the log, and every replica
			// rejects it alike. An entry of an unknown type or encoding was
			// written by a newer build, which applies it: this replica halts
			// there rather than skip it.
			halts := errors.Is(tt.want, fsm.ErrUnknownCommand) || errors.Is(tt.want, fsm.ErrUnsupportedVersion)
			want := uint64(8)
			if halts {
				want = 7
			}
			if f.AppliedIndex() != want {
				t.Errorf("AppliedIndex = %d, want %d", f.AppliedIndex(), want)
			}
			if got := f.Halted(); (got != nil) != halts || halts && !errors.Is(err, fsm.ErrHalted) {
				t.Errorf("Halted() = %v after Apply error %v; want halted %v", got, err, halts)
			}
		})
	}
}

// TestStampRejectsMalformed checks that Stamp refuses what Apply would
// refuse instead of writing into it.
func TestStampRejectsMalformed(t *testing.T) {
	tests := []struct {
		name string
		cmd  []byte
		want error
	}{
		{"nil", nil, fsm.ErrMalformed},
		{"short", header(1, 1)[:9], fsm.ErrMalformed},
		{"wrong version", header(7, 1), fsm.ErrUnsupportedVersion},
	}
	for _, tt := range tests {
		orig := slices.Clone(tt.cmd)
		err := fsm.Stamp(tt.cmd, timeAt(at(1)))
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: Stamp error = %v, want one wrapping %v", tt.name, err, tt.want)
		}
		if !slices.Equal(tt.cmd, orig) {
			t.Errorf("%s: Stamp modified a command it rejected", tt.name)
		}
	}
}
