package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"

	"github.com/interlockraft/interlock/cluster"
)

// Log stores side by side: the library's Go benchmarks (gobench.go) run
// once with bolt and once with raft-wal, and S2 runs an Interlock row on
// each; this section sets their figures next to each other.

func (r *report) writeLogStores(w writer) {
	b, wl := r.gobench, r.gobenchWAL
	if b == nil || wl == nil {
		return
	}
	w("## Log stores: bolt and wal side by side\n\n")
	w("The library's Go benchmarks (*Locks in the library's own Go benchmarks*) run twice in this run, first with every node's Raft log in bolt (`LogStore` bolt, the default), then in raft-wal (`LogStore` wal); the commands were:\n\n```sh\n%s\n%s\n```\n\n", b.command, wl.command)
	w("A bare commit is one hashicorp/raft Apply on the leader of three nodes, timed alone. Median (min–max) over the repetitions; wal ÷ bolt below 1 means wal is faster (or, for pairs/s, slower).\n\n")
	w("| measurement | bolt | wal | wal ÷ bolt |\n|---|---|---|---|\n")
	rows := []struct{ label, bench, unit string }{
		{"bare commit p50 ms", "LockUnlockUncontended/leader", "commit-p50-ms"},
		{"bare commit p99 ms", "LockUnlockUncontended/leader", "commit-p99-ms"},
		{"Lock+Unlock via the leader, p50 ms", "LockUnlockUncontended/leader", "p50-ms"},
		{"Lock+Unlock via the leader, p99 ms", "LockUnlockUncontended/leader", "p99-ms"},
		{"Lock+Unlock via a follower, p50 ms", "LockUnlockUncontended/follower", "p50-ms"},
		{"Lock+Unlock via a follower, p99 ms", "LockUnlockUncontended/follower", "p99-ms"},
		{"64 names, pairs/s", "LockUnlockParallel64/3nodes", "pairs/s"},
		{"bare hashicorp/raft, 64 goroutines, pairs/s", "LockUnlockParallel64/raft-apply-64", "pairs/s"},
	}
	for _, x := range rows {
		bv, wv := b.value(x.bench, x.unit), wl.value(x.bench, x.unit)
		w("| %s | %s | %s | %s |\n", x.label, cell(bv), cell(wv), ratio(wv.median(), bv.median()))
	}
	ilb, ilw := findS2(r.s2, sysInterlock), findS2(r.s2, sysInterlockWAL)
	if ilb != nil && ilw != nil {
		w("| S2 uncontended Lock+Unlock via a follower, p50 ms | %s | %s | %s |\n", cell(ilb.uncP50), cell(ilw.uncP50), ratio(ilw.uncP50.median(), ilb.uncP50.median()))
		w("| S2 uncontended Lock+Unlock via a follower, p99 ms | %s | %s | %s |\n", cell(ilb.uncP99), cell(ilw.uncP99), ratio(ilw.uncP99.median(), ilb.uncP99.median()))
		w("| S2 64 names, pairs/s | %s | %s | %s |\n", cell(ilb.parRate), cell(ilw.parRate), ratio(ilw.parRate.median(), ilb.parRate.median()))
	}
	if len(r.recovery) > 0 {
		for _, x := range r.recovery {
			w("| recovery of a %s log: Start to the first Lock granted, s | %s | %s | %s |\n", x.size, cell(x.bolt), cell(x.wal), ratio(x.wal.median(), x.bolt.median()))
		}
	} else {
		w("| recovery of a 1 GB log | full run only | full run only | – |\n")
	}
	w("\nBoth stores fsync every append: bolt commits a transaction (its data pages, then its meta page), raft-wal appends to the open segment file and fsyncs once. All three nodes share this machine's one disk.\n\n")
}

// recoveryRow is the time to start a node on a log of one size, per store.
type recoveryRow struct {
	size      string
	bolt, wal rep
}

// runRecovery measures, for each log store, how long a single node takes
// from cluster.Start to its first granted Lock on a DataDir whose log holds
// -recovery-mb MiB of entries: Raft reads and applies every entry before
// the Lock's own can be applied. Full mode only (1 GiB), unless the flag
// asks for a size.
func runRecovery(r *report) error {
	mb := *fRecoveryMB
	if mb == 0 {
		if r.st.mode != "full" {
			return nil
		}
		mb = 1024
	}
	row := recoveryRow{size: fmt.Sprintf("%d MiB", mb)}
	if mb >= 1024 && mb%1024 == 0 {
		row.size = fmt.Sprintf("%d GiB", mb/1024)
	}
	reps := 1
	if r.st.mode == "full" {
		reps = 2
	}
	for i := 0; i < reps; i++ {
		for _, store := range []cluster.LogStore{cluster.LogStoreBolt, cluster.LogStoreWAL} {
			d, err := recoverOnce(filepath.Join(r.tmp, fmt.Sprintf("recovery-%s-%d", store, i)), store, mb)
			if err != nil {
				return fmt.Errorf("recovery with %s: %w", store, err)
			}
			if store == cluster.LogStoreBolt {
				row.bolt = append(row.bolt, d.Seconds())
			} else {
				row.wal = append(row.wal, d.Seconds())
			}
			progress("recovery of %s with %s: %.1f s", row.size, store, d.Seconds())
		}
	}
	r.recovery = append(r.recovery, row)
	return nil
}

func recoverOnce(dir string, store cluster.LogStore, mb int) (time.Duration, error) {
	ports := freePorts(2)
	cfg := cluster.Config{
		NodeName: "recovery", BindAddr: "127.0.0.1:" + strconv.Itoa(ports[0]), RaftAddr: "127.0.0.1:" + strconv.Itoa(ports[1]),
		DataDir: filepath.Join(dir, "node"), LogStore: store, BootstrapExpect: 1,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "recovery", Level: hclog.Error, Output: os.Stderr}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	first, err := cluster.Start(ctx, cfg)
	if err != nil {
		return 0, err
	}
	if err := first.Shutdown(ctx); err != nil {
		return 0, err
	}
	if err := fillLog(cfg.DataDir, store, mb); err != nil {
		return 0, err
	}
	start := time.Now()
	n, err := cluster.Start(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer func() { _ = n.Shutdown(context.Background()) }()
	l, err := n.Lock(ctx, "after-recovery", time.Minute)
	if err != nil {
		return 0, err
	}
	d := time.Since(start)
	return d, l.Unlock(ctx)
}

// fillLog appends mb entries of 1 MiB (no-op entries, which Raft reads and
// skips) after the last entry of a stopped node's log, in the store's own
// files, as a long-running node's log would hold them.
func fillLog(dataDir string, store cluster.LogStore, mb int) error {
	var logs raft.LogStore
	var closeFn func() error
	switch store {
	case cluster.LogStoreWAL:
		meta := &metadb.BoltMetaDB{}
		w, err := wal.Open(filepath.Join(dataDir, "wal"), wal.WithMetaStore(meta))
		if err != nil {
			return err
		}
		logs, closeFn = w, func() error { return errors.Join(w.Close(), meta.Close()) }
	default:
		b, err := raftboltdb.NewBoltStore(filepath.Join(dataDir, "raft.db"))
		if err != nil {
			return err
		}
		logs, closeFn = b, b.Close
	}
	last, err := logs.LastIndex()
	if err != nil {
		closeFn()
		return err
	}
	var prev raft.Log
	if err := logs.GetLog(last, &prev); err != nil {
		closeFn()
		return err
	}
	data := make([]byte, 1<<20)
	const batch = 16
	for i := 0; i < mb; i += batch {
		var entries []*raft.Log
		for j := i; j < mb && j < i+batch; j++ {
			last++
			entries = append(entries, &raft.Log{Index: last, Term: prev.Term, Type: raft.LogNoop, Data: data})
		}
		if err := logs.StoreLogs(entries); err != nil {
			closeFn()
			return err
		}
	}
	// One small entry more: raft-wal rotates a full segment in the
	// background, and a store closed before that rotation reopens with a
	// sealed tail it can never append to (docs/failure-modes.md). Its
	// append waits for the rotation.
	last++
	if err := logs.StoreLogs([]*raft.Log{{Index: last, Term: prev.Term, Type: raft.LogNoop}}); err != nil {
		closeFn()
		return err
	}
	return closeFn()
}
