package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster/clustertest"
)

// TestConcurrentCommandsShareEntries checks group commit end to end: many
// callers on every node, leader and followers alike, locking and unlocking
// their own names at once, must all succeed, and their commands must share
// Raft entries rather than take one each. The leader merges what followers
// forward into its own entries, so the entry count stays well below the
// command count even though two thirds of the commands are forwarded.
func TestConcurrentCommandsShareEntries(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{DataDir: true})
	leader := c.Nodes[c.Leader(10*time.Second)]
	const callers, rounds = 48, 20
	before := leader.AppliedIndex()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for w := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := c.Nodes[w%3]
			name := fmt.Sprint("share-", w)
			for range rounds {
				l, err := n.Lock(ctx, name, time.Minute)
				if err != nil {
					errs <- fmt.Errorf("%s: lock %s: %w", n.Name(), name, err)
					return
				}
				if err := l.Unlock(ctx); err != nil {
					errs <- fmt.Errorf("%s: unlock %s: %w", n.Name(), name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	commands := uint64(callers * rounds * 2)
	entries := leader.AppliedIndex() - before
	t.Logf("%d commands in %d entries", commands, entries)
	if entries*4 > commands {
		t.Fatalf("%d commands took %d entries; group commit should pack at least 4 per entry on average", commands, entries)
	}
}
