package cluster

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"

	"github.com/interlockraft/interlock/fsm"
)

// The leader runs raft-autopilot for dead-server cleanup and non-voter
// promotion, as Consul and Nomad servers do. Gossip alone cannot tell a
// dead server from one that came back before gossip accepted its new
// incarnation, so a server is removed only when both gossip and Raft say
// it is gone: gossip has had it failed (or has not known it) for
// DeadServerTimeout, and the leader has not reached it over Raft's
// transport, with a fresh last contact, for DeadServerTimeout either.
// autopilot adds the (voters-1)/2 cap per pass; promotion waits until a
// non-voter has been healthy (alive in gossip, in recent contact with the
// leader, on its term, at most MaxTrailingLogs behind) for
// ServerStabilizationTime.

// autopilotDelegate is the application side of raft-autopilot on this
// node. autopilot calls it from its own goroutines; mu guards the
// bookkeeping, which the leader resets each time it starts autopilot.
type autopilotDelegate struct {
	n *Node

	mu sync.Mutex
	// started is when this leader term's autopilot began: no server is
	// judged unreachable for longer than this leader has been looking.
	started time.Time
	// reached is when the leader last got stats from a server that was in
	// recent contact with a leader.
	reached map[raft.ServerID]time.Time
	// misses counts the stats fetches in a row, since the last time it was
	// reached, that got no answer or a stale last contact from a server.
	misses map[raft.ServerID]int
	// missing is when the leader first found a configured server that
	// gossip does not know.
	missing map[raft.ServerID]time.Time
	// removing holds removals in flight, so a slow one is not repeated.
	removing map[raft.ServerID]struct{}
}

func newAutopilotDelegate(n *Node) *autopilotDelegate {
	return &autopilotDelegate{
		n:        n,
		reached:  make(map[raft.ServerID]time.Time),
		misses:   make(map[raft.ServerID]int),
		missing:  make(map[raft.ServerID]time.Time),
		removing: make(map[raft.ServerID]struct{}),
	}
}

// newAutopilot builds the node's autopilot, which only runs while the node
// leads (see maintain).
func (n *Node) newAutopilot() *autopilot.Autopilot {
	n.pilot = newAutopilotDelegate(n)
	return autopilot.New(n.raft, n.pilot,
		autopilot.WithLogger(pilotLogger{n.logger}),
		autopilot.WithPromoter(&voterPromoter{d: n.pilot}),
		autopilot.WithUpdateInterval(n.cfg.ReconcileInterval),
		autopilot.WithReconcileInterval(n.cfg.ReconcileInterval),
	)
}

// reset starts a new leader term's bookkeeping.
func (d *autopilotDelegate) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.started = time.Now()
	clear(d.reached)
	clear(d.misses)
	clear(d.missing)
}

// lastContactThreshold is how stale a server's last contact with the
// leader may be for it to count as reached. A follower that hears nothing
// for a HeartbeatTimeout starts an election itself; twice that leaves room
// for the stats call's own delay.
func (d *autopilotDelegate) lastContactThreshold() time.Duration {
	return 2 * d.n.cfg.HeartbeatTimeout
}

// AutopilotConfig maps the node's Config onto autopilot's.
func (d *autopilotDelegate) AutopilotConfig() *autopilot.Config {
	cfg := d.n.cfg
	return &autopilot.Config{
		CleanupDeadServers:      !cfg.DisableDeadServerCleanup,
		LastContactThreshold:    d.lastContactThreshold(),
		MaxTrailingLogs:         cfg.TrailingLogs,
		ServerStabilizationTime: cfg.ServerStabilizationTime,
	}
}

// NotifyState logs autopilot's view of the cluster at Trace and keeps it
// for Status; the state itself is autopilot's.
func (d *autopilotDelegate) NotifyState(s *autopilot.State) {
	d.n.autopilotView.state.Store(s) // for Status (status.go)
	d.n.logger.Trace("autopilot state", "healthy", s.Healthy, "failure_tolerance", s.FailureTolerance, "voters", len(s.Voters))
}

// KnownServers reports every member gossip knows, keyed by Raft server
// ID, and every configured server that gossip does not know, as failed.
// Every server is of the voter type (voterPromoter caps the voters), which
// is also what autopilot's (voters-1)/2 removal cap counts. Reporting the
// unknown ones means autopilot treats no server as "stale" (which it would
// remove at once), so every removal goes through
// FilterFailedServerRemovals.
func (d *autopilotDelegate) KnownServers() map[raft.ServerID]*autopilot.Server {
	n := d.n
	out := make(map[raft.ServerID]*autopilot.Server)
	self := n.raftID
	for _, m := range n.members() {
		if m.RaftAddr == "" {
			continue
		}
		status := autopilot.NodeAlive
		switch {
		case m.Status == StatusLeft || m.Leaving:
			status = autopilot.NodeLeft
		case m.Status == StatusFailed:
			status = autopilot.NodeFailed
		}
		id := m.raftID()
		out[id] = &autopilot.Server{
			ID:         id,
			Name:       m.Name,
			Address:    raft.ServerAddress(m.RaftAddr),
			NodeStatus: status,
			NodeType:   autopilot.NodeVoter,
			IsLeader:   id == self,
		}
	}
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return out
	}
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	configured := make(map[raft.ServerID]struct{})
	for _, s := range f.Configuration().Servers {
		configured[s.ID] = struct{}{}
		if _, ok := out[s.ID]; ok {
			delete(d.missing, s.ID)
			continue
		}
		if _, ok := d.missing[s.ID]; !ok {
			d.missing[s.ID] = now
		}
		out[s.ID] = &autopilot.Server{
			ID:         s.ID,
			Name:       nameOf(s.ID),
			Address:    s.Address,
			NodeStatus: autopilot.NodeFailed,
			NodeType:   autopilot.NodeVoter,
			IsLeader:   s.ID == self,
		}
	}
	for id := range d.missing {
		if _, ok := configured[id]; !ok {
			delete(d.missing, id)
		}
	}
	return out
}

// FetchServerStats asks every server for its Raft stats over the RPC
// transport, in parallel, within ctx. A server that does not answer gets a
// negative LastContact, which autopilot counts as unhealthy, rather than
// keeping the stats it reported before it died.
func (d *autopilotDelegate) FetchServerStats(ctx context.Context, servers map[raft.ServerID]*autopilot.Server) map[raft.ServerID]*autopilot.ServerStats {
	n := d.n
	var mu sync.Mutex
	out := make(map[raft.ServerID]*autopilot.ServerStats, len(servers))
	var wg sync.WaitGroup
	for id, s := range servers {
		if id == n.raftID {
			st := n.localStats()
			mu.Lock()
			out[id] = &st
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := n.fetchStats(ctx, string(s.Address), id)
			if err != nil {
				n.logger.Debug("fetch server stats", "server", s.Name, "error", err)
				st = autopilot.ServerStats{LastContact: -1}
			}
			mu.Lock()
			out[id] = &st
			mu.Unlock()
		}()
	}
	wg.Wait()
	now := time.Now()
	d.mu.Lock()
	for id, st := range out {
		if st.LastContact >= 0 && st.LastContact <= d.lastContactThreshold() {
			d.reached[id] = now
			delete(d.misses, id)
		} else {
			d.misses[id]++
		}
	}
	for id := range d.misses {
		if _, ok := out[id]; !ok {
			delete(d.misses, id)
		}
	}
	d.mu.Unlock()
	return out
}

// RemoveFailedServer removes a server that FilterFailedServerRemovals let
// through, then releases its node's registrations, locks and run leases
// unless a live member already uses that name again. autopilot expects it
// to return at once, so the work runs on the node's own goroutine.
func (d *autopilotDelegate) RemoveFailedServer(s *autopilot.Server) {
	n := d.n
	d.mu.Lock()
	if _, busy := d.removing[s.ID]; busy {
		d.mu.Unlock()
		return
	}
	d.removing[s.ID] = struct{}{}
	d.mu.Unlock()
	if !d.removable(s.ID) {
		d.mu.Lock()
		delete(d.removing, s.ID)
		d.mu.Unlock()
		return
	}
	id, name := s.ID, s.Name
	n.goFunc(func() {
		defer func() {
			d.mu.Lock()
			delete(d.removing, id)
			d.mu.Unlock()
		}()
		if err := n.raft.RemoveServer(id, 0, n.cfg.ProposeTimeout).Error(); err != nil {
			n.logger.Warn("could not remove dead server", "server", name, "error", err)
			return
		}
		n.logger.Info("removed dead server", "server", name, "id", id, "after", n.cfg.DeadServerTimeout)
		if n.nameAlive(name) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ProposeTimeout)
		defer cancel()
		if _, err := n.propose(ctx, fsm.EncodeNodeRelease(name)); err != nil {
			n.logger.Debug("release dead server's leases", "server", name, "error", err)
		}
	})
}

// minMisses is how many stats fetches in a row must miss a server before
// it can be removed: one miss may be a connection pooled to the process
// that died, or a slow reply, while the server is back and voting.
const minMisses = 3

// removable reports whether a server has been gone, by gossip and by
// Raft, for DeadServerTimeout. Gossip's verdict counts from when it marked
// the member failed, or from when this leader first missed it; Raft's from
// the last time the leader reached it, or from the start of this leader's
// autopilot, whichever is later, and needs minMisses fetches in a row that
// did not reach it.
func (d *autopilotDelegate) removable(id raft.ServerID) bool {
	n := d.n
	if n.cfg.DisableDeadServerCleanup || id == n.raftID {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.misses[id] < minMisses {
		return false
	}
	since := d.started
	if t, ok := d.reached[id]; ok && t.After(since) {
		since = t
	}
	if m, ok := n.memberByID(id); ok {
		if m.Status != StatusFailed {
			return false
		}
		if m.Since.After(since) {
			since = m.Since
		}
	} else {
		t, ok := d.missing[id]
		if !ok {
			return false // not seen missing yet: it may have just joined
		}
		if t.After(since) {
			since = t
		}
	}
	return time.Since(since) >= n.cfg.DeadServerTimeout
}

// memberByID returns the gossip member whose Raft server ID is id.
func (n *Node) memberByID(id raft.ServerID) (Member, bool) {
	for _, m := range n.members() {
		if m.raftID() == id {
			return m, true
		}
	}
	return Member{}, false
}

// nameAlive reports whether gossip has a live member called name.
func (n *Node) nameAlive(name string) bool {
	for _, m := range n.members() {
		if m.Name == name && m.Status == StatusAlive {
			return true
		}
	}
	return false
}

// voterPromoter is autopilot's promotion policy for Interlock: every
// server may vote, but at most MaxVoters do; a healthy non-voter that has
// been stable for ServerStabilizationTime is promoted while there are
// fewer. It never demotes and never moves leadership. Its methods only
// read their arguments and the delegate's bookkeeping.
type voterPromoter struct {
	d *autopilotDelegate
}

func (p *voterPromoter) GetServerExt(*autopilot.Config, *autopilot.ServerState) interface{} {
	return nil
}

func (p *voterPromoter) GetStateExt(*autopilot.Config, *autopilot.State) interface{} { return nil }

func (p *voterPromoter) GetNodeTypes(_ *autopilot.Config, s *autopilot.State) map[raft.ServerID]autopilot.NodeType {
	types := make(map[raft.ServerID]autopilot.NodeType, len(s.Servers))
	for id := range s.Servers {
		types[id] = autopilot.NodeVoter
	}
	return types
}

func (p *voterPromoter) IsPotentialVoter(t autopilot.NodeType) bool {
	return t == autopilot.NodeVoter
}

// CalculatePromotionsAndDemotions promotes stable non-voters, in ID order,
// until MaxVoters servers vote.
func (p *voterPromoter) CalculatePromotionsAndDemotions(c *autopilot.Config, s *autopilot.State) autopilot.RaftChanges {
	var changes autopilot.RaftChanges
	voters := 0
	var candidates []raft.ServerID
	now := time.Now()
	stable := s.ServerStabilizationTime(c)
	for id, srv := range s.Servers {
		switch {
		case srv.HasVotingRights():
			voters++
		case srv.State == autopilot.RaftNonVoter && srv.Health.IsStable(now, stable):
			candidates = append(candidates, id)
		}
	}
	slices.Sort(candidates)
	if room := p.d.n.cfg.MaxVoters - voters; room > 0 {
		changes.Promotions = candidates[:min(room, len(candidates))]
	}
	return changes
}

// FilterFailedServerRemovals keeps only the servers that removable says
// are gone by both gossip and Raft.
func (p *voterPromoter) FilterFailedServerRemovals(_ *autopilot.Config, _ *autopilot.State, f *autopilot.FailedServers) *autopilot.FailedServers {
	keepIDs := func(ids []raft.ServerID) []raft.ServerID {
		return slices.DeleteFunc(slices.Clone(ids), func(id raft.ServerID) bool { return !p.d.removable(id) })
	}
	keep := func(servers []*autopilot.Server) []*autopilot.Server {
		return slices.DeleteFunc(slices.Clone(servers), func(s *autopilot.Server) bool { return !p.d.removable(s.ID) })
	}
	return &autopilot.FailedServers{
		StaleNonVoters:  keepIDs(f.StaleNonVoters),
		StaleVoters:     keepIDs(f.StaleVoters),
		FailedNonVoters: keep(f.FailedNonVoters),
		FailedVoters:    keep(f.FailedVoters),
	}
}

// pilotLogger is the logger autopilot gets. autopilot logs at Error what
// is transient here: a configuration change that failed because this node
// just lost leadership, or a state update cut short because it is
// stopping (context canceled, at every graceful shutdown of a leader).
// The first becomes a Warn, the second Debug.
type pilotLogger struct {
	hclog.Logger
}

func (l pilotLogger) Error(msg string, args ...interface{}) {
	for _, a := range args {
		if err, ok := a.(error); ok && errors.Is(err, context.Canceled) {
			l.Logger.Debug(msg, args...)
			return
		}
	}
	l.Logger.Warn(msg, args...)
}

func (l pilotLogger) Named(name string) hclog.Logger { return pilotLogger{l.Logger.Named(name)} }

func (l pilotLogger) With(args ...interface{}) hclog.Logger {
	return pilotLogger{l.Logger.With(args...)}
}
