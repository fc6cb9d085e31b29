package cluster

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Disk faults. Every write Raft makes to DataDir goes through the wrappers
// below, which remember the last failure of each store: a full disk, an
// I/O or fsync error. While one stands, the node proposes nothing of its
// own (admit), reports itself unready (diskHealth), and hands leadership
// over if it has it (watchHealth); hashicorp/raft already drops to
// follower when its leader's log write fails, and this keeps it from being
// elected back. A log store fault clears on the next successful write,
// which for a follower is the leader's next retry of the entries it could
// not store; a snapshot fault clears when a probe write to DataDir
// succeeds. Nothing is rolled back by hand: a write that failed left the
// store as it was before, and Raft retries it.

// diskProbeSize is how much the recovery probe writes and syncs: enough
// that a DataDir with only a few pages free still counts as full.
const diskProbeSize = 64 << 10

// diskCheckInterval is how often watchHealth, while the node is unhealthy,
// looks at the faults, probes a faulty DataDir, and retries the handover;
// and how often a stable store write is retried.
const diskCheckInterval = 250 * time.Millisecond

// diskWatch records DataDir write faults. Its methods are safe for
// concurrent use by Raft's goroutines and the node's.
type diskWatch struct {
	mu sync.Mutex
	// log, stable and snap are the last failures of each store; nil once a
	// write to it succeeds again.
	log, stable, snap error
	// wake is poked on every change, so watchHealth acts at once.
	wake chan struct{}
	once sync.Once
}

func (w *diskWatch) wakeCh() chan struct{} {
	w.once.Do(func() { w.wake = make(chan struct{}, 1) })
	return w.wake
}

// poke wakes watchHealth.
func (w *diskWatch) poke() {
	select {
	case w.wakeCh() <- struct{}{}:
	default:
	}
}

// set records the outcome of a write to one store; what names the write.
func (w *diskWatch) set(slot *error, what string, err error) {
	w.mu.Lock()
	changed := (*slot == nil) != (err == nil)
	if err != nil {
		*slot = fmt.Errorf("%w: %s: %w", ErrDiskFault, what, err)
	} else {
		*slot = nil
	}
	w.mu.Unlock()
	if changed {
		w.poke()
	}
}

// fault returns the first standing fault, or nil.
func (w *diskWatch) fault() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return errors.Join(w.log, w.stable, w.snap)
}

// diskHealth returns nil while every write to DataDir succeeds, and
// otherwise an error wrapping ErrDiskFault that names the failed write.
// Readiness reports it.
func (n *Node) diskHealth() error { return n.disk.fault() }

// watchStores wraps Raft's stores so that their write errors are recorded.
// stop ends the stable store's wait for space (faultStable).
func (w *diskWatch) watchStores(logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore, stop <-chan struct{}) (raft.LogStore, raft.StableStore, raft.SnapshotStore) {
	fl := &faultLogs{LogStore: logs, w: w}
	var l raft.LogStore = fl
	if m, ok := logs.(raft.MonotonicLogStore); ok && m.IsMonotonic() {
		// Keep a monotonic store's promise visible to Raft.
		l = monotonicFaultLogs{fl}
	}
	return l, &faultStable{StableStore: stable, w: w, stop: stop}, &faultSnaps{SnapshotStore: snaps, w: w}
}

// faultLogs records the log store's write errors.
type faultLogs struct {
	raft.LogStore
	w *diskWatch
}

func (s *faultLogs) StoreLog(l *raft.Log) error {
	err := s.LogStore.StoreLog(l)
	s.w.set(&s.w.log, "store Raft log entry", err)
	return err
}

func (s *faultLogs) StoreLogs(logs []*raft.Log) error {
	err := s.LogStore.StoreLogs(logs)
	s.w.set(&s.w.log, "store Raft log entries", err)
	return err
}

type monotonicFaultLogs struct{ *faultLogs }

func (monotonicFaultLogs) IsMonotonic() bool { return true }

// faultStable records the stable store's write errors. hashicorp/raft
// panics when it cannot save its current term, which would take the whole
// application down on a full disk, so a failed write is retried until it
// succeeds: the node stalls, unready, until space returns. Only once the
// node shuts down is the error returned.
type faultStable struct {
	raft.StableStore
	w    *diskWatch
	stop <-chan struct{}
}

func (s *faultStable) Set(key, val []byte) error {
	return s.retry("save Raft "+string(key), func() error { return s.StableStore.Set(key, val) })
}

func (s *faultStable) SetUint64(key []byte, val uint64) error {
	return s.retry("save Raft "+string(key), func() error { return s.StableStore.SetUint64(key, val) })
}

func (s *faultStable) retry(what string, write func() error) error {
	for {
		err := write()
		s.w.set(&s.w.stable, what, err)
		if err == nil {
			return nil
		}
		select {
		case <-s.stop:
			return err
		case <-time.After(diskCheckInterval):
		}
	}
}

// faultSnaps records snapshot write errors.
type faultSnaps struct {
	raft.SnapshotStore
	w *diskWatch
}

func (s *faultSnaps) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration, configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.SnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		s.w.set(&s.w.snap, "create snapshot", err)
		return nil, err
	}
	return &faultSink{SnapshotSink: sink, w: s.w}, nil
}

// faultSink records a snapshot's write and close errors.
type faultSink struct {
	raft.SnapshotSink
	w *diskWatch
}

func (s *faultSink) Write(p []byte) (int, error) {
	n, err := s.SnapshotSink.Write(p)
	if err != nil {
		s.w.set(&s.w.snap, "write snapshot "+s.ID(), err)
	}
	return n, err
}

func (s *faultSink) Close() error {
	err := s.SnapshotSink.Close()
	s.w.set(&s.w.snap, "close snapshot "+s.ID(), err)
	return err
}

// probe writes and syncs diskProbeSize bytes in dir and removes them, to
// tell whether space has returned.
func probe(dir string) error {
	f, err := os.CreateTemp(dir, ".disk-probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = io.CopyN(f, zeros{}, diskProbeSize)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// watchHealth runs until shutdown. While DataDir faults or the state
// machine has halted (protocolHealth), it hands leadership over whenever
// this node has it, and probes DataDir so that a snapshot fault clears
// once space returns. It logs each change of health once.
func (n *Node) watchHealth() {
	// A healthy node waits for a poke: every change of a fault or a halt
	// pokes. Only while unhealthy does it look again on a timer, to probe
	// DataDir and retry the handover.
	ticker := time.NewTicker(diskCheckInterval)
	ticker.Stop()
	defer ticker.Stop()
	n.disk.poke() // the first look is at once
	var was error
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-n.disk.wakeCh():
		case <-ticker.C:
		}
		err := errors.Join(n.diskHealth(), n.protocolHealth())
		if err != nil {
			ticker.Reset(diskCheckInterval)
		} else {
			ticker.Stop()
		}
		switch {
		case err != nil && was == nil:
			n.logger.Error("node unhealthy: proposing nothing and handing over leadership until it recovers", "error", err)
		case err == nil && was != nil:
			n.logger.Info("node healthy again", "was", was)
		}
		was = err
		if err == nil {
			continue
		}
		if n.cfg.DataDir != "" && n.disk.snapFault() {
			if perr := probe(n.cfg.DataDir); perr == nil {
				n.disk.set(&n.disk.snap, "probe "+filepath.Join(n.cfg.DataDir, ".disk-probe"), nil)
			}
		}
		if n.raft.State() == raft.Leader {
			if terr := n.raft.LeadershipTransfer().Error(); terr != nil {
				n.logger.Warn("unhealthy leader could not hand over leadership", "error", terr)
			}
		}
	}
}

// snapFault reports whether a snapshot fault stands.
func (w *diskWatch) snapFault() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snap != nil
}
