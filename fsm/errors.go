package fsm

import "errors"

var (
	// ErrMalformed means a command or snapshot could not be decoded. The
	// entry is rejected as a whole; the state is unchanged.
	ErrMalformed = errors.New("fsm: malformed command")

	// ErrUnknownCommand means the entry names a command type this version
	// does not know, typically because a newer node wrote it. Upgrade every
	// node before using the newer feature.
	ErrUnknownCommand = errors.New("fsm: unknown command type")

	// ErrUnsupportedVersion means the entry or snapshot was written in an
	// encoding version this build cannot read.
	ErrUnsupportedVersion = errors.New("fsm: unsupported encoding version")

	// ErrHalted means the state machine met a committed entry that a newer
	// build wrote (ErrUnknownCommand or ErrUnsupportedVersion) and stopped
	// applying entries rather than skip it and diverge from the replicas
	// that applied it. Replace the build with one that speaks the entry's
	// protocol; see FSM.Halted.
	ErrHalted = errors.New("fsm: state machine halted")
)
