package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/fsm"
)

// Lock benchmarks run on a real three-node cluster over loopback with the
// Raft log in bolt on disk, so every Lock and every Unlock is one Raft
// commit with an fsync on a majority. The cluster is built once per
// benchmark, outside the timed sub-benchmarks.
//
// Each benchmark also times its peer in the same run: bare hashicorp/raft
// Applies of a no-op command on the same cluster, which is what a commit
// costs on this disk before Interlock adds anything. The machine is shared
// and its disk's fsync time drifts by tens of percent within minutes, so
// compare ratios to the peer, not absolute numbers across runs.

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// BenchmarkLockUnlockUncontended measures one goroutine taking and
// releasing a lock nobody else wants, through the leader and through a
// follower (which forwards each operation to the leader over RPC). It
// reports the latency of a Lock+Unlock pair (p50-ms, p99-ms) and of the
// Lock alone (lock-p50-ms).
//
// Each iteration also times its peer right before the pair: two bare Raft
// commits in a row on the leader (raft-pair-p50-ms), the floor for any
// Lock+Unlock on this cluster. Interleaving them makes the ratio
// (pair/raft-pair) hold even while the disk's speed drifts.
func BenchmarkLockUnlockUncontended(b *testing.B) {
	c := clustertest.MakeCluster(b, 3, clustertest.Options{DataDir: true})
	leader := c.Leader(10 * time.Second)
	for _, via := range []struct {
		name string
		node int
	}{{"leader", leader}, {"follower", (leader + 1) % 3}} {
		b.Run(via.name, func(b *testing.B) {
			n := c.Nodes[via.node]
			ctx := context.Background()
			pairs := make([]time.Duration, 0, b.N)
			locks := make([]time.Duration, 0, b.N)
			raw := make([]time.Duration, 0, b.N)
			commits := make([]time.Duration, 0, 2*b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				for range 2 {
					one := time.Now()
					if err := cluster.RaftApply(c.Nodes[leader], fsm.EncodeLockExpire()); err != nil {
						b.Fatal(err)
					}
					commits = append(commits, time.Since(one))
				}
				raw = append(raw, time.Since(start))

				start = time.Now()
				l, err := n.Lock(ctx, "bench-uncontended", time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				locked := time.Now()
				if err := l.Unlock(ctx); err != nil {
					b.Fatal(err)
				}
				pairs = append(pairs, time.Since(start))
				locks = append(locks, locked.Sub(start))
			}
			b.StopTimer()
			slices.Sort(pairs)
			slices.Sort(locks)
			slices.Sort(raw)
			slices.Sort(commits)
			b.ReportMetric(msOf(percentile(pairs, 0.50)), "p50-ms")
			b.ReportMetric(msOf(percentile(pairs, 0.99)), "p99-ms")
			b.ReportMetric(msOf(percentile(locks, 0.50)), "lock-p50-ms")
			b.ReportMetric(msOf(percentile(raw, 0.50)), "raft-pair-p50-ms")
			// One bare commit, for comparing log stores (INTERLOCK_TEST_LOGSTORE).
			b.ReportMetric(msOf(percentile(commits, 0.50)), "commit-p50-ms")
			b.ReportMetric(msOf(percentile(commits, 0.99)), "commit-p99-ms")
			b.ReportMetric(float64(percentile(pairs, 0.50))/float64(percentile(raw, 0.50)), "pair/raft-pair")
		})
	}
}

// BenchmarkLockUnlockParallel64 measures throughput: 64 goroutines, each
// with a lock name of its own, spread over the three nodes, take and
// release their lock as fast as they can. It reports Lock+Unlock pairs per
// second across the cluster.
func BenchmarkLockUnlockParallel64(b *testing.B) {
	c := clustertest.MakeCluster(b, 3, clustertest.Options{DataDir: true})
	leader := c.Leader(10 * time.Second)
	const workers = 64
	b.Run("raft-apply-64", func(b *testing.B) {
		// 64 goroutines committing bare entries on the leader, one command
		// per entry, as an application would use hashicorp/raft directly.
		// Two entries count as one pair.
		n := c.Nodes[leader]
		pairsPerSecond(b, workers, func(int) error {
			for range 2 {
				if err := cluster.RaftApply(n, fsm.EncodeLockExpire()); err != nil {
					return err
				}
			}
			return nil
		})
	})
	b.Run("3nodes", func(b *testing.B) {
		ctx := context.Background()
		e0, c0 := cluster.BatchCounts(c.Nodes[leader])
		pairsPerSecond(b, workers, func(w int) error {
			l, err := c.Nodes[w%3].Lock(ctx, fmt.Sprint("bench-parallel-", w), time.Minute)
			if err != nil {
				return err
			}
			return l.Unlock(ctx)
		})
		// How well group commit packs: commands per entry the leader's
		// batcher proposed during the run.
		if e1, c1 := cluster.BatchCounts(c.Nodes[leader]); e1 > e0 {
			b.ReportMetric(float64(c1-c0)/float64(e1-e0), "cmds/entry")
		}
	})
}

// pairsPerSecond runs pair b.N times in all over workers goroutines (each
// passes its own number) and reports the rate as pairs/s.
func pairsPerSecond(b *testing.B, workers int, pair func(worker int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := pair(w); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "pairs/s")
}
