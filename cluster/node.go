package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/fsm"
	"github.com/interlockraft/interlock/internal/runreg"
	"github.com/interlockraft/interlock/transport"
)

// Node is one member of an Interlock cluster: a gossip member, a Raft
// server and an RPC endpoint. All methods are safe for concurrent use.
type Node struct {
	cfg    Config
	logger hclog.Logger

	fsm       *fsm.FSM
	logStore  raft.LogStore // Raft's log store, read by caughtUp; set before Raft starts
	raft      *raft.Raft
	trans     *raft.NetworkTransport
	stores    io.Closer // the disk log store (logstore.go); nil in memory
	mux       *transport.Mux
	rpcServer *transport.Server
	rpc       *transport.Client
	ml        *memberlist.Memberlist
	gossip    *gossipDelegate
	// gossipClosed is set just before close shuts memberlist down, from
	// when on memberlist's complaints are about its own teardown.
	gossipClosed atomic.Bool
	raftAddr     string
	gossipAddr   string
	// tlsOn is set when Config.TLS encrypts the Raft/RPC port (tls_node.go).
	tlsOn bool
	// admit tracks which new members passed the TLS check (tls_admit.go).
	tlsAdmission admission

	// alive is the set of live member names, refreshed on every gossip
	// event, read by the scheduler on every tick.
	alive atomic.Pointer[map[string]struct{}]

	// leaving holds nodes that asked this leader to remove them, so that
	// reconcile does not add them back before their gossip leave arrives.
	leavingMu sync.Mutex
	leaving   map[string]time.Time

	// joining holds the addresses the reconnect loop is joining now.
	joiningMu sync.Mutex
	joining   map[string]struct{}

	// raftID is this node's Raft server ID (identity.go): its NodeName, or
	// with DataDir "" the name plus this process's incarnation.
	raftID raft.ServerID

	// pilot is the application side of the leader's autopilot
	// (autopilot.go), set before the maintenance loop starts.
	pilot *autopilotDelegate
	// autopilotView is the leader autopilot's latest state, for Status.
	autopilotView pilotView

	// locks tracks this node's lock waiters and leases.
	locks *lockTable

	// runs records the job runs in progress here (localruns.go).
	runs *runreg.Registry

	// proposals feeds the group-commit batcher (batch.go).
	proposals chan []*proposal
	batches   batchCounts
	// leaders fires on every leader change (leaderwatch.go).
	leaders *leaderWatch
	// reloadMu serializes changes to Raft's reloadable configuration:
	// the cadence of a leader (cadence.go) and the follower's contact
	// check (contactcheck.go) both read it and write it back.
	reloadMu sync.Mutex
	// metrics is nil without Config.Registerer (metrics.go).
	metrics *nodeMetrics

	// disk records DataDir write faults (diskhealth.go); protocols caches
	// the cluster's protocol floor (protocol.go).
	disk      diskWatch
	protocols protocolCache
	// metaMu serializes changes to this node's gossip meta and their
	// announcement (gossipmeta.go).
	metaMu sync.Mutex

	// startErr holds a configuration problem found while waiting to form
	// a cluster (such as a BootstrapExpect mismatch), reported by Start.
	startErr atomic.Pointer[error]

	shutdownCh chan struct{}
	// stopping is set as Shutdown begins, before it releases this node's
	// leases and announces its leave: a keep-alive that then finds its
	// lease gone, Raft's removal of this node, or a Raft RPC cut off by the
	// closing transport, is part of the shutdown, not news.
	stopping atomic.Bool
	// stopped ends in close, before gossip shuts down, to cancel gossip
	// dials in flight (gossipnet.go).
	stopped     context.Context
	stopDialing context.CancelFunc

	shutdownOnce sync.Once
	shutdownErr  error
	wg           sync.WaitGroup
}

// Start creates a node, joins or forms a cluster and returns once the node
// is a member of a cluster with a known leader. If ctx ends first, Start
// releases everything it started and returns an error that says what it
// was waiting for.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:        cfg,
		logger:     cfg.Logger.With("node", cfg.NodeName),
		leaving:    make(map[string]time.Time),
		raftID:     raftIDFor(cfg),
		locks:      newLockTable(),
		runs:       runreg.New(),
		proposals:  make(chan []*proposal, proposalQueue),
		leaders:    newLeaderWatch(),
		metrics:    newNodeMetrics(cfg),
		shutdownCh: make(chan struct{}),
	}
	n.stopped, n.stopDialing = context.WithCancel(context.Background())
	empty := map[string]struct{}{}
	n.alive.Store(&empty)
	if err := n.open(); err != nil {
		n.close()
		return nil, err
	}
	if err := n.waitReady(ctx); err != nil {
		n.close()
		return nil, err
	}
	n.goFunc(n.reconnect)
	// A restarted node may have registered jobs it no longer runs; clear
	// them so no tick waits on the fallback delay for it.
	if _, err := n.propose(ctx, fsm.EncodeRegistration(fsm.Registration{Node: cfg.NodeName, Reset: true})); err != nil {
		n.logger.Warn("could not reset job registrations", "error", err)
	}
	n.logger.Info("node ready", "leader", n.Leader(), "raft_addr", n.raftAddr)
	return n, nil
}

// open builds every component. On error the caller runs close.
func (n *Node) open() error {
	cfg := n.cfg
	logs, stable, snaps, err := n.openStores()
	if err != nil {
		return err
	}
	logs, stable, snaps = n.disk.watchStores(logs, stable, snaps, n.shutdownCh) // diskhealth.go
	n.logStore = logs
	if cfg.DataDir != "" {
		if err := checkSnapshot(cfg.DataDir, snaps); err != nil { // storecheck.go
			return err
		}
	}
	snaps = n.metrics.snapshotStore(snaps)

	ln := cfg.RaftListener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.RaftAddr); err != nil {
			return fmt.Errorf("listen on RaftAddr %s: %w; pick a free port", cfg.RaftAddr, err)
		}
	}
	n.mux = transport.NewMux(ln, n.logger.Named("mux"))
	dialer, err := n.secureTransport()
	if err != nil {
		return err
	}

	n.gossip = &gossipDelegate{events: make(chan struct{}, 1), lost: make(chan struct{}, 1), logger: n.logger, self: cfg.NodeName, askedToLeave: n.askedToLeave}
	hasState, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return fmt.Errorf("%w: read Raft state in %s: %v", ErrDataDir, cfg.DataDir, err)
	}
	// The gossip address must be known before the Raft address can be
	// advertised when RaftAddr's host is unspecified, so gossip starts with
	// a provisional meta and gets the final one right after.
	m := meta{Version: metaVersion, Cluster: cfg.ClusterName, Expect: cfg.BootstrapExpect, InCluster: hasState, Tags: cfg.Tags, Protocol: n.advertisedProtocol()}
	if string(n.raftID) != cfg.NodeName {
		m.ID = string(n.raftID)
	}
	n.gossip.setMeta(m)
	n.ml, err = newMemberlist(cfg, n.gossip, n.logger.Named("gossip"), &n.gossipClosed, n.stopped)
	if err != nil {
		return err
	}
	local := n.ml.LocalNode()
	n.gossipAddr = local.Address()
	n.gossip.selfAddr.Store(&n.gossipAddr)
	n.raftAddr, err = advertiseRaftAddr(cfg.RaftAddr, ln.Addr(), local.Addr)
	if err != nil {
		return err
	}
	n.setMeta(func(m *meta) { m.RaftAddr = n.raftAddr })

	advertise, err := net.ResolveTCPAddr("tcp", n.raftAddr)
	if err != nil {
		return fmt.Errorf("resolve advertised Raft address %s: %w", n.raftAddr, err)
	}
	layer, err := transport.NewRaftLayer(n.mux, advertise, dialer, n.raftID)
	if err != nil {
		return err
	}
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  leavingLogger{Logger: n.logger.Named("raft-net"), leaving: n.leavingOrDown, alone: n.othersStopping},
	})

	n.fsm = fsm.New(n.logger.Named("fsm"))
	n.fsm.SetLockNotifier(n.locks.changed)
	n.fsm.SetRestoreNotifier(n.locksRestored)
	n.fsm.SetHaltNotifier(n.halted)
	targeted := targetedTransport{n.trans}
	var trans raft.Transport = targeted
	var guard *voteGuard
	if cfg.DataDir == "" {
		guard = newVoteGuard(targeted, n.raftID)
		trans = guard
	}
	n.raft, err = newRaft(n.raftConfig(), n.fsm, logs, stable, snaps, trans, cfg.DataDir)
	if err != nil {
		return err
	}
	if guard != nil {
		guard.raft.Store(n.raft)
		n.goFunc(func() { guard.run(n.shutdownCh) })
	}

	n.rpc = transport.NewClient(dialer)
	n.rpcServer, err = transport.NewServer(n.mux, n.handleRPC, errorCode, n.logger.Named("rpc"))
	if err != nil {
		return err
	}
	n.goFunc(func() {
		if err := n.mux.Serve(); err != nil {
			n.logger.Error("listener stopped", "error", err)
		}
	})
	n.goFunc(n.rpcServer.Serve)
	if err := n.registerMetrics(); err != nil {
		return err
	}
	n.refreshAlive(nil)
	n.goFunc(n.maintain)
	n.goFunc(n.watchLeader)
	n.goFunc(n.watchContact)
	n.goFunc(n.expireLeases)
	n.goFunc(n.batcher)
	n.goFunc(n.watchHealth)
	return nil
}

func (n *Node) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = n.raftID
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = commitTimeout // see cadence.go
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	rc.TrailingLogs = n.cfg.TrailingLogs
	// A removed server must stay up: it may be re-added under a new
	// address, and graceful leave shuts it down in order anyway.
	rc.ShutdownOnRemove = false
	// BatchApplyCh stays off: with it, a future still buffered in Raft's
	// apply channel when Raft shuts down is never answered, and its
	// caller (and so Shutdown) would wait forever. The node's own group
	// commit (batch.go) does the batching instead.
	rc.BatchApplyCh = false
	// Raft's complaints about this node's own leave go to Debug once
	// Shutdown has begun (shutdownlog.go).
	rc.Logger = leavingLogger{Logger: n.logger.Named("raft"), leaving: n.leavingOrDown, alone: n.othersStopping}
	return rc
}

// openStores opens the Raft log, stable store and snapshot store: the
// configured LogStore and files under DataDir, or memory when DataDir is
// empty.
func (n *Node) openStores() (raft.LogStore, raft.StableStore, raft.SnapshotStore, error) {
	dir := n.cfg.DataDir
	if dir == "" {
		store := raft.NewInmemStore()
		return store, store, raft.NewInmemSnapshotStore(), nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: create DataDir %s: %v; point DataDir at a writable directory", ErrDataDir, dir, err)
	}
	probe, err := os.CreateTemp(dir, ".write-probe-*")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: DataDir %s is not writable: %v; fix its permissions or point DataDir elsewhere", ErrDataDir, dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())

	store, err := openLogStore(n.cfg.LogStore, dir, n.logger)
	if err != nil {
		return nil, nil, nil, err
	}
	n.stores = store
	// Raft re-reads every entry it replicates; keep recent ones in memory
	// rather than reading them back from disk.
	cached, err := raft.NewLogCache(512, store)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("log cache: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, n.logger.Named("snapshot"))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: snapshot store in %s: %v", ErrDataDir, dir, err)
	}
	return cached, store, snaps, nil
}

// advertiseRaftAddr turns the configured RaftAddr into one peers can dial:
// the actual port when 0 was asked for, and the gossip IP when the host is
// unspecified.
func advertiseRaftAddr(configured string, bound net.Addr, gossipIP net.IP) (string, error) {
	host, port, _ := splitHostPort(configured)
	if tcp, ok := bound.(*net.TCPAddr); ok && port == 0 {
		port = tcp.Port
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if gossipIP == nil || gossipIP.IsUnspecified() {
			return "", fmt.Errorf("%w: RaftAddr %q has no host and gossip found no address to advertise; set RaftAddr to this node's reachable IP", ErrInvalidConfig, configured)
		}
		host = gossipIP.String()
	}
	return net.JoinHostPort(host, fmt.Sprint(port)), nil
}

func (n *Node) goFunc(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// waitReady joins gossip and waits until Raft has a leader and this node is
// in its configuration.
func (n *Node) waitReady(ctx context.Context) error {
	// Joining stops when the node is ready; the reconnect loop takes over.
	jctx, cancelJoin := context.WithCancel(ctx)
	defer cancelJoin()
	joinErr := make(chan error, 1)
	n.goFunc(func() { joinErr <- n.join(jctx) })
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if p := n.startErr.Load(); p != nil {
			return *p
		}
		if c := n.gossip.conflict.Swap(nil); c != nil {
			if err := n.resolveConflict(ctx, c); err != nil {
				return err
			}
		}
		if n.Leader() != "" && n.inConfiguration() && n.caughtUp() {
			return nil
		}
		select {
		case err := <-joinErr:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("node %s did not become part of a cluster: %w (%s)", n.cfg.NodeName, ctx.Err(), n.waitingFor())
		case <-tick.C:
		}
	}
}

// resolveConflict decides whether another gossip address using our name is
// a live replica (a configuration error) or the stale record of this node's
// previous life at another address, such as a rescheduled container. A live
// one answers a TCP dial on its gossip port; a stale one is left for gossip
// to declare dead, after which memberlist lets this node reclaim the name,
// and a later join pushes our new address.
func (n *Node) resolveConflict(ctx context.Context, c *nameConflict) error {
	d := net.Dialer{Timeout: 500 * time.Millisecond}
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err == nil {
		conn.Close()
		return fmt.Errorf("%w: %s is also in use at %s, which is alive; give each replica a unique NodeName", ErrNameConflict, n.cfg.NodeName, c.addr)
	}
	n.logger.Info("name held by a stale member, waiting for gossip to declare it dead", "stale_addr", c.addr)
	n.goFunc(func() {
		// Peers refused our alive message while the old record looked
		// alive; push our state again until one accepts it, which shows as
		// the leader adding our new address to Raft.
		for i := 0; i < 30 && !n.inConfigurationAt(n.raftAddr); i++ {
			select {
			case <-time.After(2 * time.Second):
			case <-n.shutdownCh:
				return
			}
			if err := n.join(ctx); err != nil {
				n.logger.Debug("rejoin after stale name conflict", "error", err)
				return
			}
		}
	})
	return nil
}

// inConfigurationAt reports whether the Raft configuration lists this node
// at addr.
func (n *Node) inConfigurationAt(addr string) bool {
	servers, err := n.Servers()
	if err != nil {
		return false
	}
	for _, s := range servers {
		if s.Name == n.cfg.NodeName {
			return s.Address == addr
		}
	}
	return false
}

// waitingFor describes what Start is still waiting on, for its error.
func (n *Node) waitingFor() string {
	alive := 0
	for _, m := range n.members() {
		if m.Status == StatusAlive {
			alive++
		}
	}
	switch {
	case n.Leader() == "" && n.cfg.BootstrapExpect > alive:
		return fmt.Sprintf("waiting for BootstrapExpect=%d members, gossip sees %d", n.cfg.BootstrapExpect, alive)
	case n.Leader() == "":
		return "no leader elected yet; is a quorum of voters running?"
	case n.inConfiguration():
		return "catching up with the leader's log"
	default:
		return fmt.Sprintf("leader %s has not added this node yet", n.Leader())
	}
}

// caughtUp reports whether the state machine has applied everything this
// node knows to be committed, so a restarted node answers reads with the
// state it had, not an empty one.
func (n *Node) caughtUp() bool {
	commit := n.raft.CommitIndex()
	if commit == 0 || n.raft.AppliedIndex() < commit {
		return false
	}
	// Raft counts an entry applied once it has handed it to the state
	// machine's goroutine, not once the state machine has applied it: a
	// node restarted from its DataDir could return from Start before the
	// grants in its own log were back in its state (a restart test saw
	// LastGrant miss a grant committed before the kill). So the state
	// machine's own index must reach the last command at or below the
	// commit index; Raft's other entries (no-ops, barriers, configuration)
	// never reach it. A halted state machine applies nothing more; Ready
	// reports that.
	if n.fsm.Halted() != nil {
		return true
	}
	return n.fsm.AppliedIndex() >= n.lastCommandAtOrBelow(commit)
}

// lastCommandAtOrBelow returns the index of the last command entry at or
// below idx in the log, looking back at most 256 entries, or 0 if there is
// none there or the log no longer holds them (a snapshot, which Restore
// applies whole, covers compacted entries).
func (n *Node) lastCommandAtOrBelow(idx uint64) uint64 {
	var l raft.Log
	for i := idx; i > 0 && idx-i < 256; i-- {
		if err := n.logStore.GetLog(i, &l); err != nil {
			return 0
		}
		if l.Type == raft.LogCommand {
			return i
		}
	}
	return 0
}

func (n *Node) inConfiguration() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == n.raftID {
			return true
		}
	}
	return false
}

// Name returns the node's NodeName.
func (n *Node) Name() string { return n.cfg.NodeName }

// RaftAddr returns the advertised address of Raft and RPC.
func (n *Node) RaftAddr() string { return n.raftAddr }

// GossipAddr returns the advertised gossip address.
func (n *Node) GossipAddr() string { return n.gossipAddr }

// Logger returns the node's logger, already carrying the node key.
func (n *Node) Logger() hclog.Logger { return n.logger }

// IsLeader reports whether this node is the Raft leader right now. It is a
// hint for observability only: Interlock never decides who runs a job by it.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the leader's NodeName, or "" when none is known.
func (n *Node) Leader() string {
	_, id := n.raft.LeaderWithID()
	return nameOf(id)
}

// Server is one entry of the Raft configuration.
type Server struct {
	Name    string
	Address string
	Voter   bool
}

// Servers returns the current Raft configuration.
func (n *Node) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", err)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{Name: nameOf(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// AppliedIndex returns the index of the last Raft entry this node applied.
func (n *Node) AppliedIndex() uint64 { return n.fsm.AppliedIndex() }

// Shutdown leaves the cluster gracefully and releases everything, in the
// style of http.Server's Shutdown. In order, it stops the Schedulers that
// use this node (their Run returns) and cancels their runs, waiting for the
// runs to return; it releases the node's locks, registrations and the run
// leases of the runs that ended (a run still going keeps its lease until it
// expires); it hands leadership over if it has it, asks the leader to
// remove it from the Raft configuration, leaves gossip, then stops Raft and
// closes its listeners and stores.
//
// ctx bounds the whole graceful shutdown, and Config.LeaveTimeout bounds
// each of its waits (for the runs, the release, the Raft leave), so
// Shutdown(context.Background()) returns within a few LeaveTimeouts even
// with no peer left to answer. If ctx ends first, Shutdown stops what is
// left at once, as a crash would: it skips the rest of the graceful leave,
// so peers see the node fail rather than leave and the leases it did not
// release expire by their TTL, and it returns an error wrapping ctx.Err().
// A ctx that has already ended stops the node at once without leaving;
// clustertest.Kill uses that to simulate a crash.
//
// It is safe to call more than once and from several goroutines: the first
// call shuts the node down, and every call waits for it and returns its
// result, whatever ctx the later calls pass.
func (n *Node) Shutdown(ctx context.Context) error {
	n.shutdownOnce.Do(func() {
		n.stopping.Store(true)
		n.shutdownErr = n.shutdown(ctx)
	})
	return n.shutdownErr
}

// shutdown is Shutdown's body, run once.
func (n *Node) shutdown(ctx context.Context) error {
	// Runs first: releasing the lease of a run that still goes on would
	// let another node start the job alongside it.
	release, ok := n.stopLocalRuns(ctx)
	if !ok {
		return n.stopAtOnce(ctx)
	}
	// Free this node's locks, queue places, registrations and run leases
	// at once, rather than after their TTLs.
	rctx, cancel := context.WithTimeout(ctx, n.cfg.LeaveTimeout)
	_, err := n.submit(rctx, release)
	cancel()
	if ctx.Err() != nil {
		return n.stopAtOnce(ctx)
	}
	if err != nil {
		n.logger.Warn("could not release this node's leases before leaving", "error", err)
	}
	// Announce the leave only after the release: the leader removes a
	// Leaving member from Raft at once, and a node out of the
	// configuration no longer hears of its own release being applied.
	n.setMeta(func(m *meta) { m.Leaving = true })
	close(n.shutdownCh)
	switch err := n.leaveRaft(ctx); {
	case ctx.Err() != nil:
		return n.stopAtOnce(ctx)
	case errors.Is(err, errOthersStopping):
		n.logger.Info("staying in the Raft configuration: no other member is alive and staying")
	case err != nil:
		n.logger.Warn("graceful raft leave incomplete", "error", err)
	}
	// Leave propagates within a gossip round or two on a LAN; waiting
	// longer only matters when no peer is left to hear it. memberlist's
	// Leave takes a timeout, not a context: give it what ctx has left.
	wait := min(n.cfg.LeaveTimeout, 2*time.Second)
	if deadline, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(deadline))
	}
	if wait > 0 {
		if err := n.ml.Leave(wait); err != nil && ctx.Err() == nil {
			if n.othersStopping() {
				n.logger.Info("gossip leave unconfirmed: no other member is alive and staying", "error", err)
			} else {
				n.logger.Warn("gossip leave incomplete", "error", err)
			}
		}
	}
	if ctx.Err() != nil {
		return n.stopAtOnce(ctx)
	}
	err = n.close()
	n.logger.Info("node shut down")
	return err
}

// stopAtOnce stops what is left of the node when Shutdown's ctx ended
// before the graceful leave finished, and says so in the error it returns.
func (n *Node) stopAtOnce(ctx context.Context) error {
	err := n.close()
	n.logger.Info("node stopped at once: the shutdown context ended before a graceful leave", "error", ctx.Err())
	return errors.Join(fmt.Errorf("interlock: shutdown of node %s cut short, so it stopped at once without finishing its graceful leave: %w", n.cfg.NodeName, ctx.Err()), err)
}

// leavingOrDown reports whether Shutdown (which announces the leave) or a
// failed Start has begun to stop this node: Raft's complaints about its own
// removal, and its transport's about closing, are expected from then.
func (n *Node) leavingOrDown() bool {
	return n.stopping.Load() || n.shuttingDown()
}

// shuttingDown reports whether Shutdown or a failed Start has begun
// to stop the node.
func (n *Node) shuttingDown() bool {
	select {
	case <-n.shutdownCh:
		return true
	default:
		return false
	}
}

// close stops every component that open started, in reverse order. It
// tolerates components that were never created.
func (n *Node) close() error {
	select {
	case <-n.shutdownCh:
	default:
		close(n.shutdownCh)
	}
	n.stopDialing()
	n.unregisterMetrics()
	var errs []error
	if n.ml != nil {
		n.gossipClosed.Store(true)
		if err := n.ml.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("stop gossip: %w", err))
		}
	}
	if n.raft != nil {
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("stop raft: %w", err))
		}
	}
	if n.rpcServer != nil {
		n.rpcServer.Close()
	}
	if n.rpc != nil {
		n.rpc.Close()
	}
	if n.trans != nil {
		n.trans.Close()
	}
	if n.mux != nil {
		n.mux.Close()
	}
	n.wg.Wait()
	if n.stores != nil {
		if err := n.stores.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close raft store: %w", err))
		}
	}
	return errors.Join(errs...)
}
