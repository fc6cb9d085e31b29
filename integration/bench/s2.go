package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"

	"github.com/interlockraft/interlock/cluster"
)

// lockFn acquires the named lock, blocking until it has it or ctx ends, and
// returns the function that releases it.
type lockFn func(ctx context.Context, name string) (unlock func(context.Context) error, err error)

// lockSystem hands out one lockFn per worker (a worker is one would-be
// holder: its own etcd session, its own Redis token, its own node slot).
type lockSystem interface {
	worker(i int) (lockFn, error)
	close()
}

type lockStats struct {
	pairs  int
	perSec float64
	// handoffsPerSec counts acquisitions by a different worker than the
	// previous holder of the same name (only meaningful on one name).
	handoffsPerSec float64
	p50            time.Duration
	p99            time.Duration
	// errors counts failed Lock and Unlock calls (not those cut off by the
	// end of the window); each is left out of the latencies and rates.
	errors int64
	// elapsed is the loop's wall time.
	elapsed time.Duration
}

// lockLoop runs workers goroutines for d; worker w locks names(w) then
// unlocks it, over and over, and records each pair's latency.
func lockLoop(sys lockSystem, workers int, d time.Duration, name func(w int) string) (lockStats, error) {
	fns := make([]lockFn, workers)
	for w := range fns {
		f, err := sys.worker(w)
		if err != nil {
			return lockStats{}, err
		}
		fns[w] = f
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	lat := make([]durs, workers)
	var firstErr atomic.Pointer[error]
	var nErrs atomic.Int64
	var lastHolder atomic.Int64
	var handoffs atomic.Int64
	lastHolder.Store(-1)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for ctx.Err() == nil {
				t := time.Now()
				unlock, err := fns[w](ctx, name(w))
				if err != nil {
					if ctx.Err() == nil {
						nErrs.Add(1)
						firstErr.CompareAndSwap(nil, &err)
						time.Sleep(10 * time.Millisecond)
					}
					continue
				}
				if prev := lastHolder.Swap(int64(w)); prev != int64(w) {
					handoffs.Add(1)
				}
				uctx, ucancel := context.WithTimeout(context.Background(), 5*time.Second)
				err = unlock(uctx)
				ucancel()
				if err != nil {
					nErrs.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				lat[w] = append(lat[w], time.Since(t))
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all durs
	for _, l := range lat {
		all = append(all, l...)
	}
	s := all.sorted()
	st := lockStats{pairs: len(s), perSec: float64(len(s)) / elapsed.Seconds(), p50: pctSorted(s, 50), p99: pctSorted(s, 99),
		handoffsPerSec: float64(handoffs.Load()) / elapsed.Seconds(), errors: nErrs.Load(), elapsed: elapsed}
	if p := firstErr.Load(); p != nil && len(s) == 0 {
		return st, *p
	}
	return st, nil
}

// ---- etcd Mutex

type etcdLocks struct {
	ec *etcdCluster
	// clients are one per member: a gRPC client on loopback to that
	// member only, or its in-process v3client.
	clients  []*clientv3.Client
	first    int // the member the first worker (the uncontended loop) uses: a follower
	mu       sync.Mutex
	sessions []*concurrency.Session
}

// newEtcdLocks starts three etcd members in this process, on Interlock's
// Raft timing when equal, and reaches each through gRPC on loopback or,
// when inproc, through v3client: direct calls into the member's server,
// as Interlock's lock is called in the process that runs the node.
func newEtcdLocks(dir string, equal, inproc bool) (*etcdLocks, error) {
	ec, err := startEtcd(dir, 3, equal)
	if err != nil {
		return nil, err
	}
	l := &etcdLocks{ec: ec, first: ec.follower()}
	for i := 0; i < 3; i++ {
		if inproc {
			l.clients = append(l.clients, v3client.New(ec.members[i].Server))
			continue
		}
		cli, err := newEtcdClient(etcdEndpoints(ec.clientPorts[i : i+1]))
		if err != nil {
			l.close()
			return nil, err
		}
		l.clients = append(l.clients, cli)
	}
	return l, nil
}

func (l *etcdLocks) worker(i int) (lockFn, error) {
	cli := l.clients[(l.first+i)%len(l.clients)]
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.sessions = append(l.sessions, sess)
	l.mu.Unlock()
	mutexes := map[string]*concurrency.Mutex{}
	return func(ctx context.Context, name string) (func(context.Context) error, error) {
		m := mutexes[name]
		if m == nil {
			m = concurrency.NewMutex(sess, "/locks/"+name)
			mutexes[name] = m
		}
		if err := m.Lock(ctx); err != nil {
			return nil, err
		}
		return m.Unlock, nil
	}, nil
}

func (l *etcdLocks) closeSessions() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.sessions {
		s.Close()
	}
	l.sessions = nil
}

func (l *etcdLocks) close() {
	l.closeSessions()
	for _, c := range l.clients {
		c.Close()
	}
	if l.ec != nil {
		l.ec.close()
	}
}

// ---- Redis SET NX PX + Lua compare-and-delete

var redisUnlockScript = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`)

// redisRetry is how long a would-be holder waits before asking again: Redis
// has no queue of waiters, so a contended lock is polled.
const redisRetry = time.Millisecond

type redisLocks struct {
	cli *redis.Client
	ttl time.Duration
}

func newRedisLocks(addr string) *redisLocks {
	return &redisLocks{cli: redis.NewClient(&redis.Options{Addr: addr, PoolSize: 128}), ttl: 10 * time.Second}
}

func randToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (l *redisLocks) worker(int) (lockFn, error) {
	return func(ctx context.Context, name string) (func(context.Context) error, error) {
		key, tok := "lock:"+name, randToken()
		for {
			ok, err := l.cli.SetNX(ctx, key, tok, l.ttl).Result()
			if err != nil {
				return nil, err
			}
			if ok {
				return func(ctx context.Context) error {
					n, err := redisUnlockScript.Run(ctx, l.cli, []string{key}, tok).Int()
					if err == nil && n != 1 {
						err = errors.New("redis unlock: lock was no longer ours")
					}
					return err
				}, nil
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(redisRetry):
			}
		}
	}, nil
}

func (l *redisLocks) close() { l.cli.Close() }

// ---- Interlock

type interlockLocks struct {
	nodes []*cluster.Node
	first int // a follower, for the uncontended loop
	ttl   time.Duration
}

func newInterlockLocks(dir string, store cluster.LogStore) (*interlockLocks, error) {
	nodes, err := startInterlockStore(dir, 3, store)
	if err != nil {
		return nil, err
	}
	leader := interlockLeader(nodes)
	return &interlockLocks{nodes: nodes, first: (leader + 1) % 3, ttl: 10 * time.Second}, nil
}

// worker calls the node's Lock and the Lease's Unlock directly, as an
// application does and as every other system here is called. It once
// found them by reflection, from before the library had locks. In a
// side-by-side run of the 64-name loop, the reflective calls packed 41
// commands per entry against 50 for direct ones, and were slower in every
// repetition.
func (l *interlockLocks) worker(i int) (lockFn, error) {
	n := l.nodes[(l.first+i)%len(l.nodes)]
	return func(ctx context.Context, name string) (func(context.Context) error, error) {
		lease, err := n.Lock(ctx, name, l.ttl)
		if err != nil {
			return nil, err
		}
		return lease.Unlock, nil
	}, nil
}

func (l *interlockLocks) close() { stopInterlock(l.nodes) }

// batches returns the Raft entries the cluster's group commit has proposed
// so far and the commands they carried.
func (l *interlockLocks) batches() (entries, commands uint64) {
	_, entries, commands = raftCounts(l.nodes)
	return entries, commands
}

// batchCounter is a lock system that counts how it packs commands into
// log entries: Interlock's group commit.
type batchCounter interface {
	batches() (entries, commands uint64)
}

// ---- S2

type lockRow struct {
	sys                     string
	uncP50, uncP99, uncRate rep
	parRate, parP50, parP99 rep
	conRate, conP99         rep
	conHandoffs             rep
	// errs is the failed Lock/Unlock calls of each repetition, all three
	// loops together.
	errs rep
	// parPerEntry and parEntries are, for a system with group commit, the
	// commands each Raft entry carried in the 64-name loop and the entries
	// per second.
	parPerEntry, parEntries rep
}

func runS2(r *report) error {
	redisSrv, err := startRedis(filepath.Join(r.tmp, "redis-s2"), false)
	if err != nil {
		return err
	}
	defer redisSrv.stop()
	type entry struct {
		name string
		open func(i int) (lockSystem, error)
	}
	systems := []entry{
		{sysInterlock, func(i int) (lockSystem, error) {
			return newInterlockLocks(filepath.Join(r.tmp, fmt.Sprintf("s2-interlock-%d", i)), cluster.LogStoreBolt)
		}},
		{sysInterlockWAL, func(i int) (lockSystem, error) {
			return newInterlockLocks(filepath.Join(r.tmp, fmt.Sprintf("s2-interlock-wal-%d", i)), cluster.LogStoreWAL)
		}},
		{sysEtcdMutex, func(i int) (lockSystem, error) {
			return newEtcdLocks(filepath.Join(r.tmp, fmt.Sprintf("s2-etcd-%d", i)), false, false)
		}},
		{sysEtcdMutexEq, func(i int) (lockSystem, error) {
			return newEtcdLocks(filepath.Join(r.tmp, fmt.Sprintf("s2-etcd-eq-%d", i)), true, false)
		}},
		{sysEtcdMutexInproc, func(i int) (lockSystem, error) {
			return newEtcdLocks(filepath.Join(r.tmp, fmt.Sprintf("s2-etcd-inproc-%d", i)), true, true)
		}},
		{sysRedisLock, func(int) (lockSystem, error) { return newRedisLocks(redisSrv.addr), nil }},
	}
	var errs []string
	rows := make([]lockRow, len(systems))
	for k, e := range systems {
		rows[k].sys = e.name
	}
	// Repetitions outside, systems inside, in a rotating order, so that a
	// slow spell of the shared disk or CPU falls on every system alike.
	for i := 0; i < r.st.lockReps; i++ {
		for j := range systems {
			k := (i + j) % len(systems)
			e, row := systems[k], &rows[k]
			sys, err := e.open(i)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", e.name, err))
				continue
			}
			if err := s2Once(r.st, sys, row, e.name+fmt.Sprint(i)); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", e.name, err))
			}
			sys.close()
		}
	}
	r.s2 = append(r.s2, rows...)
	if r.st.redisFsyncAlways {
		// Once more for Redis with every write fsynced (appendfsync always),
		// the durability Raft and etcd give.
		rs, err := startRedis(filepath.Join(r.tmp, "redis-s2-fsync"), true)
		if err != nil {
			errs = append(errs, err.Error())
		} else {
			row := lockRow{sys: sysRedisLock + ", appendfsync always"}
			l := newRedisLocks(rs.addr)
			for i := 0; i < r.st.lockReps; i++ {
				if err := s2Once(r.st, l, &row, fmt.Sprint("fs", i)); err != nil {
					errs = append(errs, err.Error())
				}
			}
			l.close()
			rs.stop()
			r.s2 = append(r.s2, row)
		}
	}
	var parts []string
	for _, row := range r.s2 {
		parts = append(parts, fmt.Sprintf("%s p50=%sms 64-names=%s/s", short(row.sys), num(row.uncP50.median()), num(row.parRate.median())))
	}
	progress("S2 locks (%s per loop × %d): %s", r.st.lockDur, r.st.lockReps, strings.Join(parts, "; "))
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

// s2Warmup is how long every system runs its 64-name loop, unmeasured,
// before the measured loops: connections, sessions and caches are then
// warm for every system alike.
const s2Warmup = 500 * time.Millisecond

func s2Once(st settings, sys lockSystem, row *lockRow, tag string) error {
	if _, err := lockLoop(sys, 64, s2Warmup, func(w int) string { return fmt.Sprintf("w-%s-%d", tag, w) }); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	u, err := lockLoop(sys, 1, st.lockDur, func(int) string { return "u-" + tag })
	if err != nil {
		return fmt.Errorf("uncontended: %w", err)
	}
	row.uncP50 = append(row.uncP50, ms(u.p50))
	row.uncP99 = append(row.uncP99, ms(u.p99))
	row.uncRate = append(row.uncRate, u.perSec)
	bc, counts := sys.(batchCounter)
	var e0, c0 uint64
	if counts {
		e0, c0 = bc.batches()
	}
	p, err := lockLoop(sys, 64, st.lockDur, func(w int) string { return fmt.Sprintf("p-%s-%d", tag, w) })
	if err != nil {
		return fmt.Errorf("64 names: %w", err)
	}
	if counts {
		if e1, c1 := bc.batches(); e1 > e0 {
			row.parPerEntry = append(row.parPerEntry, float64(c1-c0)/float64(e1-e0))
			row.parEntries = append(row.parEntries, float64(e1-e0)/p.elapsed.Seconds())
		}
	}
	row.parRate = append(row.parRate, p.perSec)
	row.parP50 = append(row.parP50, ms(p.p50))
	row.parP99 = append(row.parP99, ms(p.p99))
	c, err := lockLoop(sys, st.contenders, st.lockDur, func(int) string { return "c-" + tag })
	if err != nil {
		return fmt.Errorf("contended: %w", err)
	}
	row.conRate = append(row.conRate, c.perSec)
	row.conHandoffs = append(row.conHandoffs, c.handoffsPerSec)
	row.conP99 = append(row.conP99, ms(c.p99))
	row.errs = append(row.errs, float64(u.errors+p.errors+c.errors))
	if el, ok := sys.(*etcdLocks); ok {
		el.closeSessions()
	}
	return nil
}
