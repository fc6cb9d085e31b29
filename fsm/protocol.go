package fsm

import (
	"errors"
	"fmt"
)

// Protocol versions. A protocol version names the set of command types,
// entry fields and snapshot formats a build can apply. Every node
// advertises the highest one it speaks, and a command type is proposed only
// once every server in the Raft configuration speaks its version
// (Protocol), so that no replica meets an entry it cannot apply. Nodes from
// before versions were advertised count as ProtocolBase.
const (
	// ProtocolBase is the first protocol: claims, registrations, run
	// leases, locks, node releases and batches, snapshot format 2.
	ProtocolBase = 1
	// ProtocolJobControl adds pause and resume, run-now requests, the
	// finished runs of a run update (job history) and snapshot format 3.
	ProtocolJobControl = 2
	// ProtocolAnyOrder adds claims granted out of order
	// (CommandClaimAnyOrder), the job records they keep and snapshot
	// format 4.
	ProtocolAnyOrder = 3
	// ProtocolVersion is the highest protocol this build speaks.
	ProtocolVersion = ProtocolAnyOrder
)

// Protocol returns the protocol version that introduced the command type,
// and 0 for a type this build does not know.
func (t CommandType) Protocol() int {
	switch t {
	case CommandClaim, CommandRegister, CommandRuns, CommandLockAcquire, CommandLockRenew,
		CommandLockRelease, CommandLockExpire, CommandNodeRelease, CommandBatch:
		return ProtocolBase
	case CommandPause, CommandRunNow:
		return ProtocolJobControl
	case CommandClaimAnyOrder:
		return ProtocolAnyOrder
	default:
		return 0
	}
}

// haltLocked stops the state machine at the entry it cannot apply. An
// entry of an unknown type or encoding was committed by a newer leader, so
// every newer replica applies it: skipping it here would let this replica's
// state diverge from theirs, and acting on that state could grant a tick or
// a lock twice. So from here on Apply refuses every entry, Snapshot refuses
// to capture the stale state, and Halted reports why until the process is
// replaced by one that speaks the entry's protocol. The caller holds f.mu.
func (f *FSM) haltLocked(index uint64, cause error) error {
	if f.halted == nil {
		f.halted = fmt.Errorf("%w: entry %d: %w; this build speaks protocol %d: run a newer build on this node", ErrHalted, index, cause, ProtocolVersion)
		f.logger.Error("state machine halted", "index", index, "error", f.halted)
		if f.onHalt != nil {
			go f.onHalt(f.halted)
		}
	}
	return f.halted
}

// halt is haltLocked for callers that do not hold f.mu.
func (f *FSM) halt(index uint64, cause error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.haltLocked(index, cause)
}

// Halted returns nil while the state machine applies entries, and once it
// met an entry it cannot apply, an error wrapping ErrHalted that names the
// entry. It is safe to call concurrently with Apply.
func (f *FSM) Halted() error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.halted
}

// SetHaltNotifier installs a function called once, on its own goroutine,
// when the state machine halts. Set it before Raft starts.
func (f *FSM) SetHaltNotifier(fn func(error)) {
	f.mu.Lock()
	f.onHalt = fn
	f.mu.Unlock()
}

// haltsApply reports whether an Apply error means this build is older
// than the entry, rather than that the entry is malformed (which every
// replica rejects alike).
func haltsApply(err error) bool {
	return errors.Is(err, ErrUnknownCommand) || errors.Is(err, ErrUnsupportedVersion)
}
