package cluster

import "errors"

var (
	// ErrNotLeader means the node that received a proposal is not the Raft
	// leader. Proposals through Node are retried on the current leader, so
	// callers see it only if leadership never settles before their ctx ends.
	ErrNotLeader = errors.New("interlock: node is not the leader")

	// ErrNoLeader means no leader was known before ctx ended: quorum is lost
	// or an election is still running. Cluster jobs pause until one is back.
	ErrNoLeader = errors.New("interlock: no cluster leader")

	// ErrShutdown means the node was shut down.
	ErrShutdown = errors.New("interlock: node is shut down")

	// ErrOutcomeUnknown means no one can tell whether a command took
	// effect: the leader's deadline passed while it was committing, Raft
	// failed to commit or apply its entry, or a batch's per-command
	// results were lost. It is never a refusal. Proposals through Node
	// retry it, which every command tolerates (a repeated claim gets the
	// original grant, lock calls carry owner and call IDs, registrations
	// and run-lease updates are idempotent), so callers see it only when
	// their ctx ends first, wrapped together with the ctx's error.
	ErrOutcomeUnknown = errors.New("interlock: outcome of the command is unknown")

	// ErrInvalidConfig means a Config field is unusable; the message names
	// the field and how to fix it.
	ErrInvalidConfig = errors.New("interlock: invalid config")

	// ErrInvalidLock means an argument of Lock or TryLock is unusable, such
	// as an empty name or a ttl that is not positive; the message names the
	// argument and how to fix it. Nothing was taken or queued.
	ErrInvalidLock = errors.New("interlock: invalid lock argument")

	// ErrLocked means TryLock found the lock held by another lease.
	ErrLocked = errors.New("interlock: lock is held")

	// ErrLeaseLost means the lease is no longer the lock's holder: it
	// expired, was released, or the lock was handed to someone else.
	ErrLeaseLost = errors.New("interlock: lease lost")

	// ErrDataDir means DataDir could not be created, locked or written.
	ErrDataDir = errors.New("interlock: data directory unusable")

	// ErrJoin means none of the Join addresses answered before the join
	// timeout.
	ErrJoin = errors.New("interlock: could not join any member")

	// ErrBootstrapMismatch means a peer with the same ClusterName expects a
	// different BootstrapExpect, so no safe first configuration exists.
	// Give every node of a new cluster the same BootstrapExpect.
	ErrBootstrapMismatch = errors.New("interlock: BootstrapExpect differs between peers")

	// ErrNameConflict means another live member already uses this NodeName
	// at a different address. Give every replica a unique NodeName.
	ErrNameConflict = errors.New("interlock: NodeName already used by a live member")

	// ErrNotReady is what Ready wraps when the node cannot serve yet: it
	// is not in the Raft configuration, knows no leader, or has not
	// applied the log it knows to be committed. The message says which.
	ErrNotReady = errors.New("interlock: node not ready")

	// ErrUnknownPeer means RemovePeer or TransferLeadership named a node
	// that is not a server of the Raft configuration.
	ErrUnknownPeer = errors.New("interlock: no such server in the Raft configuration")

	// ErrRemoveSelf means RemovePeer named the node it was called on. A
	// node leaves by Shutdown; another node can remove it once it is dead.
	ErrRemoveSelf = errors.New("interlock: a node cannot remove itself")

	// ErrPeerAlive means RemovePeer named a node that gossip sees alive:
	// the leader would add it back at once. Stop it first; Shutdown
	// leaves the configuration by itself.
	ErrPeerAlive = errors.New("interlock: peer is alive")

	// ErrGossipNotEncrypted means a keyring method was called on a node
	// started without Config.SecretKey: there is no keyring to change.
	ErrGossipNotEncrypted = errors.New("interlock: gossip is not encrypted (Config.SecretKey is empty)")

	// ErrKeyring means a gossip keyring change was refused, or failed on
	// at least one live member; the message names the members and why.
	ErrKeyring = errors.New("interlock: gossip keyring change failed")

	// ErrProtocol means an operation needs a newer protocol version than
	// some server in the Raft configuration advertises, as during a rolling
	// upgrade; the message names the server. Nothing was proposed. Finish
	// upgrading every node, then retry.
	ErrProtocol = errors.New("interlock: not every server speaks the protocol version this needs")

	// ErrDiskFault means writing to DataDir failed (a full disk, an I/O or
	// fsync error): the node proposes nothing and hands over leadership
	// until a write succeeds again. The message names the failed write.
	ErrDiskFault = errors.New("interlock: DataDir write failed")
)
