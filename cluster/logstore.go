package cluster

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	bolt "go.etcd.io/bbolt"
)

// LogStore selects how a node with a DataDir keeps its Raft log and stable
// store on disk. The zero value is LogStoreBolt. A LogStore is a plain value,
// safe to copy and to read from any goroutine.
type LogStore int

const (
	// LogStoreBolt keeps the log in one BoltDB file, DataDir/raft.db
	// (raft-boltdb/v2). It is the default, and the layout of every
	// release before LogStore existed.
	LogStoreBolt LogStore = iota
	// LogStoreWAL keeps the log in append-only segment files under
	// DataDir/wal (hashicorp/raft-wal), which make an append durable with
	// one fsync where bolt's transaction needs more.
	LogStoreWAL
)

// String returns the name ParseLogStore accepts: "bolt" or "wal".
func (s LogStore) String() string {
	switch s {
	case LogStoreBolt:
		return "bolt"
	case LogStoreWAL:
		return "wal"
	}
	return fmt.Sprintf("LogStore(%d)", int(s))
}

// ParseLogStore returns the LogStore named by s ("bolt" or "wal"), for
// programs that read it from a flag or a file. It is safe to call
// concurrently.
func ParseLogStore(s string) (LogStore, error) {
	switch s {
	case "bolt", "":
		return LogStoreBolt, nil
	case "wal":
		return LogStoreWAL, nil
	}
	return 0, fmt.Errorf("%w: LogStore %q is unknown; use \"bolt\" (the default) or \"wal\"", ErrInvalidConfig, s)
}

func (s LogStore) validate() error {
	switch s {
	case LogStoreBolt, LogStoreWAL:
		return nil
	}
	return fmt.Errorf("%w: LogStore is %d, not a known store; use cluster.LogStoreBolt (the default) or cluster.LogStoreWAL", ErrInvalidConfig, int(s))
}

// File and directory names under DataDir. Bolt's file keeps the name it had
// before LogStore existed, so an existing DataDir opens unchanged.
const (
	boltFile = "raft.db"
	walDir   = "wal"
)

// storeOpenTimeout bounds the wait for a store's file lock: a second
// process on the same DataDir would otherwise block Start forever.
const storeOpenTimeout = 5 * time.Second

// durableLog is what both disk stores are: a Raft log and stable store
// that must be closed.
type durableLog interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// openLogStore opens the configured store under dir. It refuses a DataDir
// that holds the other store's log, since opening the empty one would make
// the node forget its term, vote and entries.
func openLogStore(kind LogStore, dir string, logger hclog.Logger) (durableLog, error) {
	boltPath := filepath.Join(dir, boltFile)
	walPath := filepath.Join(dir, walDir)
	switch kind {
	case LogStoreWAL:
		if exists(boltPath) {
			return nil, fmt.Errorf("%w: DataDir %s holds a bolt log (%s) but LogStore is wal; keep LogStore bolt for this DataDir, or start the node with wal on an empty DataDir after removing it from the cluster", ErrDataDir, dir, boltFile)
		}
		if err := os.MkdirAll(walPath, 0o750); err != nil {
			return nil, fmt.Errorf("%w: create %s: %v", ErrDataDir, walPath, err)
		}
		return openWithTimeout(walPath, func() (durableLog, error) {
			// The WAL's Close leaves its metadata database open, and with
			// it the file lock, so a node restarted in the same process
			// could not open it again. The node owns and closes it.
			meta := &metadb.BoltMetaDB{}
			w, err := wal.Open(walPath, wal.WithMetaStore(meta), wal.WithLogger(logger.Named("wal")))
			if err != nil {
				meta.Close()
				return nil, err
			}
			return walStore{WAL: w, meta: meta}, nil
		})
	default:
		if exists(walPath) {
			return nil, fmt.Errorf("%w: DataDir %s holds a wal log (%s/) but LogStore is bolt; set LogStore to wal for this DataDir", ErrDataDir, dir, walDir)
		}
		return openWithTimeout(boltPath, func() (durableLog, error) {
			return raftboltdb.New(raftboltdb.Options{Path: boltPath, BoltOptions: &bolt.Options{
				// Every commit writes the free-page list otherwise, pages
				// that bolt can rebuild by scanning when it opens the file.
				// Syncing stays on: each commit still reaches the disk.
				NoFreelistSync: true,
				FreelistType:   bolt.FreelistMapType,
			}})
		})
	}
}

// openWithTimeout runs open and gives up after storeOpenTimeout, because
// both stores wait without bound for a file lock another process holds.
func openWithTimeout(path string, open func() (durableLog, error)) (durableLog, error) {
	type result struct {
		s   durableLog
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := open()
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("%w: open %s: %v; if the file is damaged, %s", ErrDataDir, path, r.err, rejoinHint)
		}
		return r.s, nil
	case <-time.After(storeOpenTimeout):
		// The opener goroutine is left to finish on its own; when the
		// other process exits it gets the lock, and we close the store.
		go func() {
			if r := <-ch; r.err == nil {
				r.s.Close()
			}
		}()
		return nil, fmt.Errorf("%w: %s is locked by another process; each node needs its own DataDir", ErrDataDir, path)
	}
}

// walStore is the WAL with the metadata database it does not close itself.
type walStore struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
}

// Close closes the WAL and then its metadata database.
func (s walStore) Close() error {
	return errors.Join(s.WAL.Close(), s.meta.Close())
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
