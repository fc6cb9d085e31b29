package cluster

import (
	"errors"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// nodeMetrics holds the metrics a Node updates as events happen. A nil
// *nodeMetrics (no Config.Registerer) makes every method a no-op, so the
// call sites stay single lines that cost a nil check. The metrics are
// safe for concurrent use.
type nodeMetrics struct {
	leaderChanges prometheus.Counter
	entries       prometheus.Counter
	commands      prometheus.Counter
	commandsEntry prometheus.Histogram
	commitSeconds prometheus.Histogram
	snapshots     *prometheus.CounterVec
	snapshotTime  prometheus.Histogram
	lockAcquired  prometheus.Counter
	lockWait      prometheus.Histogram
	leasesLost    prometheus.Counter
	all           []prometheus.Collector
	unregister    func()
}

// newNodeMetrics returns the event metrics of a node, or nil when cfg has
// no Registerer.
func newNodeMetrics(cfg Config) *nodeMetrics {
	if cfg.Registerer == nil {
		return nil
	}
	m := &nodeMetrics{
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "interlock_raft_leader_changes_total",
			Help: "Times this node saw a new leader elected (a change to a different, known leader).",
		}),
		entries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "interlock_raft_entries_total",
			Help: "Raft entries this node proposed as leader through its group commit.",
		}),
		commands: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "interlock_raft_commands_total",
			Help: "Commands (claims, lock operations, ...) carried by the entries in interlock_raft_entries_total; commands/entries is the group-commit ratio.",
		}),
		commandsEntry: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "interlock_raft_commands_per_entry",
			Help:    "Commands per Raft entry this node proposed as leader.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "interlock_raft_commit_duration_seconds",
			Help:    "Time from proposing a Raft entry on this leader to its commit and apply.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "interlock_raft_snapshots_total",
			Help: "Snapshots written to this node's snapshot store, taken here or received from the leader, by result (ok, error, cancelled).",
		}, []string{"result"}),
		snapshotTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "interlock_raft_snapshot_duration_seconds",
			Help:    "Time to write one snapshot to this node's snapshot store, from its creation to its close.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		lockAcquired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "interlock_lock_acquisitions_total",
			Help: "Locks granted to Lock and TryLock calls on this node.",
		}),
		lockWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "interlock_lock_wait_seconds",
			Help:    "Time from a Lock or TryLock call on this node to its grant.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 11),
		}),
		leasesLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "interlock_lock_leases_lost_total",
			Help: "Leases held on this node that ended without their holder's Unlock or this node's shutdown: expired before a renewal, or taken over.",
		}),
	}
	for _, r := range []string{"ok", "error", "cancelled"} {
		m.snapshots.WithLabelValues(r)
	}
	m.all = []prometheus.Collector{m.leaderChanges, m.entries, m.commands, m.commandsEntry, m.commitSeconds,
		m.snapshots, m.snapshotTime, m.lockAcquired, m.lockWait, m.leasesLost}
	return m
}

func (m *nodeMetrics) describe(ch chan<- *prometheus.Desc) {
	if m == nil {
		return
	}
	for _, c := range m.all {
		c.Describe(ch)
	}
}

func (m *nodeMetrics) collect(ch chan<- prometheus.Metric) {
	if m == nil {
		return
	}
	for _, c := range m.all {
		c.Collect(ch)
	}
}

// batchSent records one batch of commands that the batcher sent while
// this node led: one entry, committed since began. Deferred at the start
// of sendBatch, it sees the batch's size as cut.
func (m *nodeMetrics) batchSent(began time.Time, leader bool, commands int) {
	if m == nil || !leader || commands == 0 {
		return
	}
	m.entries.Inc()
	m.commands.Add(float64(commands))
	m.commandsEntry.Observe(float64(commands))
	m.commitSeconds.Observe(time.Since(began).Seconds())
}

// leaderChanged records that this node saw a new, known leader.
func (m *nodeMetrics) leaderChanged() {
	if m == nil {
		return
	}
	m.leaderChanges.Inc()
}

// lockGranted records a Lock or TryLock call granted after waiting since
// began.
func (m *nodeMetrics) lockGranted(began time.Time) {
	if m == nil {
		return
	}
	m.lockAcquired.Inc()
	m.lockWait.Observe(time.Since(began).Seconds())
}

// leaseEnded records the end of a lease; released is true when its
// holder's Unlock or this node's shutdown ended it.
func (m *nodeMetrics) leaseEnded(released bool) {
	if m == nil || released {
		return
	}
	m.leasesLost.Inc()
}

// heldCount is how many leases this node holds.
func (t *lockTable) heldCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, owners := range t.held {
		n += len(owners)
	}
	return n
}

// errSnapshotCancelled marks a snapshot sink that Raft cancelled.
var errSnapshotCancelled = errors.New("snapshot cancelled")

// snapshotStore wraps s so that every snapshot written to it is counted
// and timed; without metrics it returns s.
func (m *nodeMetrics) snapshotStore(s raft.SnapshotStore) raft.SnapshotStore {
	if m == nil {
		return s
	}
	return timedSnapshots{SnapshotStore: s, m: m}
}

func (m *nodeMetrics) snapshotDone(began time.Time, err error) {
	switch {
	case err == nil:
		m.snapshots.WithLabelValues("ok").Inc()
		m.snapshotTime.Observe(time.Since(began).Seconds())
	case errors.Is(err, errSnapshotCancelled):
		m.snapshots.WithLabelValues("cancelled").Inc()
	default:
		m.snapshots.WithLabelValues("error").Inc()
	}
}

// timedSnapshots is a raft.SnapshotStore that times each snapshot from
// Create to its sink's Close.
type timedSnapshots struct {
	raft.SnapshotStore
	m *nodeMetrics
}

// Create implements raft.SnapshotStore.
func (s timedSnapshots) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	began := time.Now()
	sink, err := s.SnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		s.m.snapshotDone(began, err)
		return nil, err
	}
	return &timedSink{SnapshotSink: sink, m: s.m, began: began}, nil
}

// timedSink reports its snapshot when Raft closes or cancels it. Raft
// uses a sink from one goroutine.
type timedSink struct {
	raft.SnapshotSink
	m     *nodeMetrics
	began time.Time
	done  bool
}

// Close implements raft.SnapshotSink.
func (k *timedSink) Close() error {
	err := k.SnapshotSink.Close()
	k.report(err)
	return err
}

// Cancel implements raft.SnapshotSink.
func (k *timedSink) Cancel() error {
	err := k.SnapshotSink.Cancel()
	k.report(errSnapshotCancelled)
	return err
}

func (k *timedSink) report(err error) {
	if !k.done {
		k.done = true
		k.m.snapshotDone(k.began, err)
	}
}

// parseStat reads a number from raft.Stats, 0 if it is not one.
func parseStat(s string) uint64 {
	v, _ := strconv.ParseUint(s, 10, 64)
	return v
}
