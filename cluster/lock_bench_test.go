package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster/clustertest"
)

// Lock benchmarks run on a real three-node cluster over loopback with the
// Raft log in bolt on disk, so every Lock and every Unlock is one Raft
// commit with an fsync on a majority. The cluster is built once per
// benchmark, outside the timed sub-benchmarks.

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
			b.ResetTimer()
			for range b.N {
				start := time.Now()
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
			b.ReportMetric(msOf(percentile(pairs, 0.50)), "p50-ms")
			b.ReportMetric(msOf(percentile(pairs, 0.99)), "p99-ms")
			b.ReportMetric(msOf(percentile(locks, 0.50)), "lock-p50-ms")
		})
	}
}

// BenchmarkLockUnlockParallel64 measures throughput: 64 goroutines, each
// with a lock name of its own, spread over the three nodes, take and
// release their lock as fast as they can. It reports Lock+Unlock pairs per
// second across the cluster.
func BenchmarkLockUnlockParallel64(b *testing.B) {
	c := clustertest.MakeCluster(b, 3, clustertest.Options{DataDir: true})
	c.Leader(10 * time.Second)
	const workers = 64
	b.Run("3nodes", func(b *testing.B) {
		var next atomic.Int64
		var wg sync.WaitGroup
		ctx := context.Background()
		b.ResetTimer()
		start := time.Now()
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n := c.Nodes[w%3]
				name := fmt.Sprint("bench-parallel-", w)
				for next.Add(1) <= int64(b.N) {
					l, err := n.Lock(ctx, name, time.Minute)
					if err != nil {
						b.Error(err)
						return
					}
					if err := l.Unlock(ctx); err != nil {
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
	})
}
