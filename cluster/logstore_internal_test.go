package cluster

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TestLogStoresReopenAfterTailTruncation checks that each store can be
// read and appended to after Raft truncated the log's tail and the node
// restarted. Raft truncates the tail when a follower holds entries that a
// new leader does not have. raft-wal v0.4.0 marked the truncated tail
// segment sealed without writing its index block, so the next open failed
// to read the log ("sealed segment has no index block") and raft.NewRaft
// panicked; the chaos soak on wal hit it after a SIGTERM and restart.
func TestLogStoresReopenAfterTailTruncation(t *testing.T) {
	for _, kind := range []LogStore{LogStoreBolt, LogStoreWAL} {
		t.Run(kind.String(), func(t *testing.T) {
			dir := t.TempDir()
			logger := hclog.NewNullLogger()
			s, err := openLogStore(kind, dir, logger)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.StoreLogs(entries(1, 10)); err != nil {
				t.Fatal(err)
			}
			// A new leader overwrites entries 7..10: Raft deletes them,
			// then appends its own.
			if err := s.DeleteRange(7, 10); err != nil {
				t.Fatal(err)
			}
			if err := s.StoreLogs(entries(7, 8)); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s, err = openLogStore(kind, dir, logger)
			if err != nil {
				t.Fatalf("reopen after a tail truncation: %v", err)
			}
			defer s.Close()
			for _, i := range []uint64{1, 6, 7, 8} {
				var l raft.Log
				if err := s.GetLog(i, &l); err != nil {
					t.Fatalf("GetLog(%d) after reopening: %v", i, err)
				}
				if l.Index != i || string(l.Data) != string(payload(i)) {
					t.Fatalf("GetLog(%d) = index %d data %q", i, l.Index, l.Data)
				}
			}
			if last, err := s.LastIndex(); err != nil || last != 8 {
				t.Fatalf("LastIndex = %d, %v; want 8", last, err)
			}
			if err := s.StoreLogs(entries(9, 12)); err != nil {
				t.Fatalf("append after reopening: %v", err)
			}
		})
	}
}

// entries returns log entries from through to, inclusive, in term 1.
func entries(from, to uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: payload(i)})
	}
	return out
}

func payload(i uint64) []byte { return []byte{'e', byte(i)} }

// brokenLog is a log store that lists entries it cannot return: all but
// the last, as raft-wal v0.4.0 did after a tail truncation sealed the
// segment holding them without an index.
type brokenLog struct{ *raft.InmemStore }

func (b brokenLog) GetLog(i uint64, l *raft.Log) error {
	if last, _ := b.LastIndex(); i < last {
		return errors.New("sealed segment has no index block")
	}
	return b.InmemStore.GetLog(i, l)
}

// TestNewRaftTurnsALogPanicIntoAnError checks that a log Raft cannot read
// at start gives Start an ErrDataDir naming the directory, not a panic in
// the application: raft.NewRaft panics when it cannot read an entry its
// log store lists.
func TestNewRaftTurnsALogPanicIntoAnError(t *testing.T) {
	store := raft.NewInmemStore()
	if err := store.StoreLogs(entries(1, 3)); err != nil {
		t.Fatal(err)
	}
	conf := raft.DefaultConfig()
	conf.LocalID = "n1"
	conf.Logger = hclog.NewNullLogger()
	_, trans := raft.NewInmemTransport("n1")
	defer trans.Close()
	r, err := newRaft(conf, &raft.MockFSM{}, brokenLog{store}, store, raft.NewInmemSnapshotStore(), trans, "/data/n1")
	if r != nil {
		r.Shutdown()
	}
	if !errors.Is(err, ErrDataDir) || !strings.Contains(err.Error(), "/data/n1") || !strings.Contains(err.Error(), "sealed segment") {
		t.Fatalf("newRaft over an unreadable log: %v, want ErrDataDir naming the directory and the cause", err)
	}
}
