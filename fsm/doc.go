// Package fsm is Interlock's replicated state machine: the single place where
// the cluster decides which node runs which (job, tick).
//
// Every decision is a pure function of the Raft log. Commands carry
// everything the state machine needs, including the leader's clock reading,
// which the leader stamps into each entry before it is replicated. The state
// machine itself never reads the clock, randomness or the environment, so
// every replica that applies the same log reaches the same state, and a node
// that restarts from a snapshot plus the log tail reaches it again.
//
// The state is small on purpose: for every job, the last granted tick, its
// holder and its fencing token (the Raft index of the granting entry), a
// record of the few grants before it and the latest grant made out of order
// (grantrecord.go); and for every job, the set of nodes that registered it,
// which the scheduler uses to spread ticks across replicas. Any-order
// claims (CommandClaimAnyOrder) may be granted for an instant before the
// job's last grant when the record shows it never was: claims of
// consecutive ticks from different nodes can commit out of order, and the
// later grant does not run the earlier tick.
//
// Commands are encoded in a compact, versioned binary form (see codec.go and
// command.go) because a scheduler on one node packs thousands of claims for
// the same instant into one log entry.
//
// Each command type belongs to a protocol version (protocol.go); nodes
// propose a type only once every server speaks its version, and a state
// machine that meets an entry of a type or encoding it does not know halts
// there (ErrHalted) rather than skip it and diverge from the replicas that
// applied it.
package fsm
