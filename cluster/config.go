package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/interlockraft/interlock/internal/slogbridge"
	"github.com/interlockraft/interlock/transport"
)

// Default values applied by Start to zero Config fields.
const (
	DefaultClusterName = "interlock"
	DefaultBindPort    = 7946
	DefaultRaftPort    = 7947

	// The Raft timings default to a fast LAN. A follower starts an election
	// once the leader has been silent for a random [HeartbeatTimeout,
	// 1.5×HeartbeatTimeout) (contactcheck.go), so a leader loss costs
	// 0.4–0.6 s plus one election round (hashicorp/raft's own 1 s defaults
	// take about 2 s).
	//
	// They also set most of an idle node's CPU, through the number of
	// Raft RPCs sent with nothing to replicate; see cadence.go for how the
	// leader sends fewer heartbeats without slowing failover. Longer
	// timeouts would cut them further, but failover (SIGKILL of the leader
	// to the next run) scales with them, against an aim of under 1 s at
	// the median: it measured 0.7–1.0 s before the contact check and
	// 0.42–0.55 s since (S3, chaos soak), so they stay, and the margin is
	// left to slower networks.
	//
	// The leader lease equals HeartbeatTimeout (raft's own defaults have
	// it at half): the leader, which sends heartbeats half as often as a
	// follower's timeout would ask, then keeps the same 2.5× margin between
	// its heartbeats and the lease as raft's defaults do. A leader cut off
	// from its quorum steps down after the lease, 0.4 s; the followers
	// elect a new one after 0.4–0.6 s in any case, and grants need a
	// commit, so the longer lease never lets two nodes run one tick.
	DefaultHeartbeatTimeout   = 400 * time.Millisecond
	DefaultElectionTimeout    = 400 * time.Millisecond
	DefaultLeaderLeaseTimeout = 400 * time.Millisecond

	DefaultMaxVoters         = 5
	DefaultReconcileInterval = 2 * time.Second
	DefaultDeadServerTimeout = 30 * time.Second
	// DefaultServerStabilizationTime is Consul's and Nomad's default.
	DefaultServerStabilizationTime = 10 * time.Second
	DefaultProposeTimeout          = 5 * time.Second
	DefaultLeaveTimeout            = 5 * time.Second
	DefaultSnapshotThreshold       = 8192
	DefaultTrailingLogs            = 10240

	// DefaultReconnectInterval is short: a node below its expected size
	// retries this often, so a healed partition rejoins within seconds.
	DefaultReconnectInterval = 2 * time.Second
	// DefaultRejoinInterval is Consul's retry-join interval.
	DefaultRejoinInterval = 30 * time.Second
	// DefaultReconnectTimeout is Serf's: a failed member is retried for a
	// day before it is forgotten.
	DefaultReconnectTimeout = 24 * time.Hour
)

// Config configures a Node. The zero value of every field except the ones
// marked required has a sensible default; Start applies the defaults to its
// own copy and never modifies the caller's.
//
// Every duration field follows one rule: zero means the documented default
// and a negative value is an error that names the field. Where a feature
// can be turned off, a separate bool does it (DisableDeadServerCleanup).
type Config struct {
	// NodeName is the node's unique name in the cluster, also its Raft
	// server ID. Default: the hostname.
	NodeName string

	// ClusterName isolates clusters that share a network: gossip from a
	// different ClusterName is dropped, so two clusters never merge even if
	// their Join lists cross. Default "interlock".
	ClusterName string

	// BindAddr is the host:port memberlist gossips on (TCP and UDP).
	// The host may be an IP, a network interface's name (eth0), or a
	// go-sockaddr template such as {{ GetPrivateIP }} or
	// {{ GetInterfaceIP "eth0" }}, which must yield exactly one address;
	// a port-less name or template gets port 7946 (advertise.go).
	// Default "0.0.0.0:7946".
	BindAddr string

	// AdvertiseAddr is the host:port other members reach gossip at, when it
	// differs from BindAddr (NAT, containers). Like BindAddr its host may be
	// an interface name or a go-sockaddr template; without a port it uses
	// BindAddr's. Inside a Swarm task, set it to the overlay network's
	// interface (for example {{ GetInterfaceIP "eth0" }}), since the
	// default private IP may belong to docker_gwbridge. Default: derived
	// from BindAddr.
	AdvertiseAddr string

	// RaftAddr is the host:port that Raft and Interlock's RPC listen on and
	// advertise. A host of "" or 0.0.0.0 listens on all interfaces and
	// advertises the gossip address's IP. Default ":7947".
	RaftAddr string

	// DataDir holds the Raft log, stable store and snapshots. "" keeps
	// everything in memory, so a restarted node rejoins as a new member.
	DataDir string

	// LogStore picks the on-disk Raft log when DataDir is set:
	// LogStoreBolt (the default, DataDir/raft.db) or LogStoreWAL
	// (segment files under DataDir/wal). A DataDir keeps the store it was
	// created with; Start refuses one that holds the other store's log.
	// Ignored when DataDir is "".
	LogStore LogStore

	// Join lists host:port addresses of existing members, or DNS names whose
	// A records are all tried (a port-less entry uses BindAddr's port). Empty
	// for the first node of a cluster. Start keeps retrying until it has
	// reached a member other than itself (a name that resolves only to this
	// node is not a join), unless BootstrapExpect is 1. After Start the
	// names are resolved again every RejoinInterval, or ReconnectInterval
	// while the node sees fewer live members than it expects, and every
	// resolved address that is not a live member is joined (discovery.go).
	Join []string

	// JoinTimeout bounds how long Start keeps retrying Join before it fails
	// with ErrJoin. Zero retries until Start's ctx ends.
	JoinTimeout time.Duration

	// BootstrapExpect is how many nodes must be seen through gossip before
	// the first election. 1 is a single-node cluster; 3 is typical. 0 never
	// bootstraps: the node only joins a cluster that already exists.
	BootstrapExpect int

	// Logger receives all logs, with stable keys (node, job, tick, token).
	// Nil means Slog if set, else an hclog logger at Info on stderr.
	Logger hclog.Logger

	// Slog, if set, receives all logs instead, for programs that log with
	// log/slog: the same key/value pairs arrive as attributes, hclog's
	// Trace as slog.LevelDebug-4, and a sub-logger's name (such as
	// "interlock.raft") as the "logger" attribute. Its handler decides
	// which levels are logged. Set Logger or Slog, not both.
	Slog *slog.Logger

	// HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout tune Raft.
	// They must satisfy LeaderLeaseTimeout ≤ HeartbeatTimeout ≤
	// ElectionTimeout. Failover takes between one and one and a half
	// HeartbeatTimeouts after the leader's last heartbeat, plus an
	// election round.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration

	// MaxVoters caps the Raft voters; later members join as non-voters.
	// Default 5.
	MaxVoters int

	// ReconcileInterval is how often the leader re-reads gossip membership
	// to repair the Raft configuration, in case an event was dropped.
	// Default 2s.
	ReconcileInterval time.Duration

	// DeadServerTimeout is how long a server must have been failed in
	// gossip (or absent from it), and out of the leader's Raft contact,
	// before the leader removes it from the Raft configuration, letting a
	// non-voter take its vote. A member that only missed a probe is
	// suspect, not failed, and is never removed; nor is one that gossip
	// calls failed while it answers the leader with a recent Raft contact.
	// At most (voters-1)/2 voters are removed at once. Default 30s; set
	// DisableDeadServerCleanup to turn the cleanup off.
	DeadServerTimeout time.Duration

	// DisableDeadServerCleanup turns off the removal of dead servers from
	// the Raft configuration: a failed voter then keeps its vote until an
	// operator removes it.
	DisableDeadServerCleanup bool

	// ServerStabilizationTime is how long a non-voter must have been
	// healthy (alive in gossip, in recent Raft contact with the leader and
	// caught up) before the leader promotes it to replace a lost voter.
	// Default 10s.
	ServerStabilizationTime time.Duration

	// ProposeTimeout bounds one Raft proposal on the leader. Default 5s.
	ProposeTimeout time.Duration

	// LeaveTimeout bounds each wait of a graceful Shutdown: for the
	// node's job runs to return after cancelling them, for the release of
	// its leases, and for its Raft leave. Shutdown's ctx bounds the whole.
	// Default 5s.
	LeaveTimeout time.Duration

	// ReconnectInterval is how often a node that sees fewer live members
	// than it expects (the larger of BootstrapExpect and the Raft
	// configuration's size) resolves Join again and tries to rejoin every
	// failed member and every resolved address that is not a live member,
	// as Serf's reconnect loop does; a pass also runs as soon as a member
	// fails, and its DNS lookups are bounded by this. Gossip alone stops
	// contacting members that have been dead for 30 s, so without this a
	// longer partition never heals. Default 2s.
	ReconnectInterval time.Duration

	// RejoinInterval is the same period while the node sees every member
	// it expects: it finds a scaled-up service or a member left failed.
	// Default 30s.
	RejoinInterval time.Duration

	// ReconnectTimeout is how long a failed (or left) member is kept and
	// retried before this node forgets it. Default 24h.
	ReconnectTimeout time.Duration

	// SnapshotThreshold and TrailingLogs tune Raft log compaction.
	SnapshotThreshold uint64
	TrailingLogs      uint64

	// SecretKey, if set, encrypts gossip (16, 24 or 32 bytes, AES).
	SecretKey []byte

	// Tags describe the node, such as {"zone": "eu-1", "gpu": "true"}. The
	// node advertises them in its gossip metadata (Member.Tags), and a
	// scheduler job with RequireTags runs only on nodes whose Tags include
	// every required pair. Keys must be non-empty, and the JSON encoding
	// at most 256 bytes. Default: none.
	Tags map[string]string

	// TLS, if set, turns on mutual TLS for the Raft/RPC port: see
	// TLSConfig for the certificate rules and docs/security.md for what it
	// protects. Default: none, so anyone who can reach RaftAddr can send
	// Raft messages and forward proposals.
	TLS *TLSConfig
	// Registerer, if set, receives the node's Prometheus metrics (the
	// interlock_raft_*, interlock_gossip_* and interlock_lock_* series) and
	// a bridge of the go-metrics that Raft and memberlist emit, both
	// unregistered again when the node shuts down. Several nodes in one
	// process need a registry each, or a shared one wrapped per node with
	// prometheus.WrapRegistererWith(prometheus.Labels{"node": name}, reg).
	// Default: nil, no metrics and nothing registered anywhere.
	Registerer prometheus.Registerer

	// RaftListener, if set, is used instead of listening on RaftAddr, which
	// is then only advertised; tests wrap it to inject faults. With TLS
	// set, it carries the TLS connections, so pass a plain listener.
	RaftListener net.Listener

	// RaftDialer, if set, opens every TCP connection to other nodes'
	// RaftAddr; with TLS set, the TLS handshake runs over its connections.
	// Default: a *net.Dialer.
	RaftDialer transport.Dialer

	// lookupHost, if set, replaces DNS for the names in Join; tests use it
	// to change what a name resolves to.
	lookupHost func(ctx context.Context, host string) ([]string, error)

	// tuneGossip, if set, edits memberlist's configuration just before it
	// starts; tests use it to shorten gossip's timings and to cut gossip
	// between nodes.
	tuneGossip func(*memberlist.Config)

	// protocol, if set, is the fsm protocol version the node advertises
	// instead of fsm.ProtocolVersion; tests use it to play an older node
	// (protocol.go).
	protocol int
}

// withDefaults returns a copy of c with defaults applied, or an error that
// names the first unusable field.
func (c Config) withDefaults() (Config, error) {
	if c.NodeName == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return c, fmt.Errorf("%w: NodeName is empty and the hostname is unavailable (%v); set Config.NodeName", ErrInvalidConfig, err)
		}
		c.NodeName = h
	}
	if c.ClusterName == "" {
		c.ClusterName = DefaultClusterName
	}
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0:" + strconv.Itoa(DefaultBindPort)
	}
	if c.RaftAddr == "" {
		c.RaftAddr = ":" + strconv.Itoa(DefaultRaftPort)
	}
	switch {
	case c.Logger != nil && c.Slog != nil:
		return c, fmt.Errorf("%w: Logger and Slog are both set; set only one of them", ErrInvalidConfig)
	case c.Slog != nil:
		c.Logger = slogbridge.New(c.Slog).Named("interlock")
	case c.Logger == nil:
		c.Logger = hclog.New(&hclog.LoggerOptions{Name: "interlock", Level: hclog.Info})
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = DefaultElectionTimeout
	}
	if c.LeaderLeaseTimeout == 0 {
		// Never above HeartbeatTimeout, which raft requires.
		c.LeaderLeaseTimeout = min(DefaultLeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	if c.MaxVoters == 0 {
		c.MaxVoters = DefaultMaxVoters
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = DefaultReconcileInterval
	}
	if c.DeadServerTimeout == 0 {
		c.DeadServerTimeout = DefaultDeadServerTimeout
	}
	if c.ServerStabilizationTime == 0 {
		c.ServerStabilizationTime = DefaultServerStabilizationTime
	}
	if c.ProposeTimeout == 0 {
		c.ProposeTimeout = DefaultProposeTimeout
	}
	if c.LeaveTimeout == 0 {
		c.LeaveTimeout = DefaultLeaveTimeout
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = DefaultTrailingLogs
	}
	if c.ReconnectInterval == 0 {
		c.ReconnectInterval = DefaultReconnectInterval
	}
	if c.RejoinInterval == 0 {
		c.RejoinInterval = DefaultRejoinInterval
	}
	if c.ReconnectTimeout == 0 {
		c.ReconnectTimeout = DefaultReconnectTimeout
	}
	c.Tags = cloneTags(c.Tags)
	if err := c.validate(); err != nil {
		return c, err
	}
	// Interface names and templates are resolved last, so a config with
	// another mistake is reported without looking at the interfaces.
	return c.resolveAddrs()
}

func (c Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if _, _, err := splitAddrSpec(c.BindAddr); err != nil {
		return bad("BindAddr %q: %v; use host:port such as 0.0.0.0:7946, an interface name, or a go-sockaddr template", c.BindAddr, err)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitAddrSpec(c.AdvertiseAddr); err != nil {
			return bad("AdvertiseAddr %q: %v; use host:port, an interface name, or a go-sockaddr template", c.AdvertiseAddr, err)
		}
	}
	if _, _, err := splitHostPort(c.RaftAddr); err != nil {
		return bad("RaftAddr %q: %v; use host:port such as 0.0.0.0:7947", c.RaftAddr, err)
	}
	if c.BootstrapExpect < 0 {
		return bad("BootstrapExpect is %d; use 1 for a single node, or the number of initial nodes", c.BootstrapExpect)
	}
	if c.BootstrapExpect == 0 && len(c.Join) == 0 {
		return bad("BootstrapExpect is 0 and Join is empty, so this node could never be part of a cluster; set BootstrapExpect to 1 for a single node, or list members in Join")
	}
	for _, d := range c.durations() {
		if d.value < d.min {
			return bad("%s is %s; %s", d.name, d.value, d.fix)
		}
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout || c.HeartbeatTimeout > c.ElectionTimeout {
		return bad("Raft timings must satisfy LeaderLeaseTimeout (%s) ≤ HeartbeatTimeout (%s) ≤ ElectionTimeout (%s)", c.LeaderLeaseTimeout, c.HeartbeatTimeout, c.ElectionTimeout)
	}
	if c.MaxVoters < 1 {
		return bad("MaxVoters is %d; it must be at least 1 (odd numbers such as 3 or 5 tolerate the most failures)", c.MaxVoters)
	}
	if err := c.LogStore.validate(); err != nil {
		return err
	}
	if err := validateTags(c.Tags); err != nil {
		return err
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
	default:
		return bad("SecretKey is %d bytes; it must be 16, 24 or 32 bytes", len(c.SecretKey))
	}
	return nil
}

// raftMinTimeout is the smallest Raft timing hashicorp/raft accepts.
const raftMinTimeout = 5 * time.Millisecond

// durationRule is the range one duration field of Config must fall in once
// defaults are applied, and how to fix a value outside it.
type durationRule struct {
	name  string
	value time.Duration
	// def is what a zero value becomes.
	def time.Duration
	min time.Duration
	fix string
}

// durations lists every time.Duration field of Config with its rule. A
// negative duration would otherwise panic a background goroutine (a
// time.NewTicker) or silently time out every proposal, so every duration
// field needs a row here; TestConfigEveryDurationFieldHasARule enforces it,
// and TestConfigZeroDurationsGetDefaults that zero means the default.
// Zero values were replaced by defaults before this runs.
func (c Config) durations() []durationRule {
	orDefault := func(def, min time.Duration) string {
		return fmt.Sprintf("use 0 for the default (%s) or at least %s", def, min)
	}
	return []durationRule{
		// JoinTimeout's default is no bound: Start's ctx is the bound.
		{"JoinTimeout", c.JoinTimeout, 0, 0, "use 0 to keep retrying until Start's ctx ends, or a positive duration"},
		{"HeartbeatTimeout", c.HeartbeatTimeout, DefaultHeartbeatTimeout, raftMinTimeout, orDefault(DefaultHeartbeatTimeout, raftMinTimeout)},
		{"ElectionTimeout", c.ElectionTimeout, DefaultElectionTimeout, raftMinTimeout, orDefault(DefaultElectionTimeout, raftMinTimeout)},
		{"LeaderLeaseTimeout", c.LeaderLeaseTimeout, DefaultLeaderLeaseTimeout, raftMinTimeout, orDefault(DefaultLeaderLeaseTimeout, raftMinTimeout)},
		{"ReconcileInterval", c.ReconcileInterval, DefaultReconcileInterval, time.Millisecond, orDefault(DefaultReconcileInterval, time.Millisecond)},
		{"DeadServerTimeout", c.DeadServerTimeout, DefaultDeadServerTimeout, time.Millisecond, orDefault(DefaultDeadServerTimeout, time.Millisecond) + "; to turn dead-server cleanup off, set DisableDeadServerCleanup"},
		{"ProposeTimeout", c.ProposeTimeout, DefaultProposeTimeout, time.Millisecond, orDefault(DefaultProposeTimeout, time.Millisecond)},
		{"LeaveTimeout", c.LeaveTimeout, DefaultLeaveTimeout, time.Millisecond, orDefault(DefaultLeaveTimeout, time.Millisecond)},
		{"ServerStabilizationTime", c.ServerStabilizationTime, DefaultServerStabilizationTime, time.Millisecond, orDefault(DefaultServerStabilizationTime, time.Millisecond)},
		{"ReconnectInterval", c.ReconnectInterval, DefaultReconnectInterval, time.Millisecond, orDefault(DefaultReconnectInterval, time.Millisecond)},
		{"RejoinInterval", c.RejoinInterval, DefaultRejoinInterval, time.Millisecond, orDefault(DefaultRejoinInterval, time.Millisecond)},
		{"ReconnectTimeout", c.ReconnectTimeout, DefaultReconnectTimeout, time.Millisecond, orDefault(DefaultReconnectTimeout, time.Millisecond)},
	}
}

// splitHostPort parses host:port and checks the port is a usable number.
func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number between 0 and 65535", p)
	}
	return host, port, nil
}
