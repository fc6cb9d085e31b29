package cluster

import (
	"github.com/interlockraft/interlock/fsm"
	"github.com/interlockraft/interlock/internal/seam"
)

// Plumbing returns n as the scheduler reaches it, through the seam, so the
// package's tests can claim, register and renew run leases directly.
func Plumbing(n *Node) interface {
	seam.Coordinator
	seam.RunLeaser
	seam.LocalRunner
} {
	return plumbing{n}
}

// State returns n's state machine, for the tests to read.
func State(n *Node) *fsm.FSM { return n.fsm }
