package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"reflect"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
)

const s3Interval = 100 * time.Millisecond

type failRow struct {
	kind   string // "sched" or "lock"
	sys    string
	event  string
	gap    rep // ms from the failure to the next successful run / acquire
	missed rep // ticks in the watch window with no run
	dups   rep // extra runs of a tick, or a second holder of a lock
	notes  []string
	// gointerlock: ms from the kill until the last replica exited.
	exitAfter rep
}

// gapAfter returns the time from t to the first run of job starting after t.
func gapAfter(runs []runRec, job string, t time.Time) (time.Duration, bool) {
	best := time.Duration(-1)
	for _, r := range runs {
		if r.job != job || !r.start.After(t) {
			continue
		}
		if g := r.start.Sub(t); best < 0 || g < best {
			best = g
		}
	}
	return best, best >= 0
}

// s3Sched kills the Raft leader (Interlock: clustertest.Kill in the leader's
// process; etcd: SIGKILL of the process embedding the etcd leader) while a
// 100 ms job runs on three replicas.
func s3Sched(sys, dir string, watch time.Duration, moveLeaderToHolder bool) (gap time.Duration, ok bool, st tickStats, note string, err error) {
	rec := &recorder{}
	job := "fail"
	cs, err := startReplicas(sys, dir, job+":"+s3Interval.String()+":1", 0, rec, "")
	if err != nil {
		return 0, false, st, "", err
	}
	defer stopAll(cs)
	time.Sleep(1500 * time.Millisecond)
	victim := waitLeaderChild(cs, 10*time.Second)
	if victim == nil {
		return 0, false, st, "", errors.New("no leader reported")
	}
	if sys == sysEtcdElect && moveLeaderToHolder {
		var err error
		if victim, err = etcdMoveLeaderToHolder(cs, victim); err != nil {
			return 0, false, st, "", err
		}
	}
	// Who ran the last tick before the kill (for etcd: the election holder).
	runs := rec.snapshot()
	var lastRunner string
	for _, r := range runs {
		lastRunner = r.node
	}
	t := time.Now()
	if sys == sysInterlock {
		victim.send("kill")
	} else {
		victim.sigkill()
	}
	time.Sleep(watch)
	runs = rec.snapshot()
	gap, ok = gapAfter(runs, job, t)
	// The gap may outlast the window (an election session's TTL): keep
	// waiting for the first run, up to 10 s more.
	for !ok && time.Since(t) < watch+10*time.Second {
		time.Sleep(50 * time.Millisecond)
		gap, ok = gapAfter(rec.snapshot(), job, t)
	}
	// Count from the first whole tick after the kill to the end of the
	// window, less one interval so each tick had its start window.
	st = analyzeTicks(runs, job, s3Interval, t, t.Add(watch-s3Interval-StartSlack))
	if sys == sysEtcdElect {
		if lastRunner == victim.name {
			note = "killed process held the election"
		} else {
			note = "killed process did not hold the election"
		}
	}
	return gap, ok, st, note, nil
}

// StartSlack leaves late runs of the window's last ticks time to arrive.
const StartSlack = 500 * time.Millisecond

// s3Gointerlock kills Redis under three gointerlock replicas, restarts it
// after one second, and reports how the replicas fared.
func s3Gointerlock(dir string, watch time.Duration) (gap time.Duration, ok bool, exited int, exitAfter time.Duration, err error) {
	rs, err := startRedis(filepath.Join(dir, "redis"), false)
	if err != nil {
		return 0, false, 0, 0, err
	}
	defer rs.stop()
	rec := &recorder{}
	cs, err := startReplicas(sysGointerlock, dir, "fail:"+s3Interval.String()+":1", 0, rec, rs.addr)
	if err != nil {
		return 0, false, 0, 0, err
	}
	defer stopAll(cs)
	time.Sleep(1500 * time.Millisecond)
	t := time.Now()
	rs.kill()
	time.Sleep(time.Second)
	if err := rs.start(); err != nil {
		return 0, false, 0, 0, err
	}
	time.Sleep(watch - time.Second)
	gap, ok = gapAfter(rec.snapshot(), "fail", t.Add(time.Second))
	if ok {
		gap += time.Second
	}
	for _, c := range cs {
		if !c.alive() {
			exited++
			exitAfter = max(exitAfter, c.exitAt.Sub(t))
		}
	}
	return gap, ok, exited, exitAfter, nil
}

// s3RedisLock kills Redis (no persistence) while a holder has a lock with
// a 10 s lease, restarts it after one second, and measures when another
// client gets the lock: with the lock state lost, it gets it at once,
// while the first holder still believes it holds it.
func s3RedisLock(dir string) (gap time.Duration, twoHolders bool, err error) {
	rs, err := startRedis(filepath.Join(dir, "redis-lock"), false)
	if err != nil {
		return 0, false, err
	}
	defer rs.stop()
	l := newRedisLocks(rs.addr)
	defer l.close()
	a, _ := l.worker(0)
	b, _ := l.worker(1)
	ctx := context.Background()
	if _, err := a(ctx, "held"); err != nil {
		return 0, false, err
	}
	t := time.Now()
	rs.kill()
	go func() {
		time.Sleep(time.Second)
		_ = rs.start()
	}()
	for time.Since(t) < 10*time.Second {
		actx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err := b(actx, "held")
		cancel()
		if err == nil {
			return time.Since(t), true, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, false, errors.New("second client never got the lock")
}

// s3EtcdMutex kills the etcd leader member's process while a client loops
// Lock/Unlock through all endpoints, and measures from the kill to the
// first pair that completes. As for Interlock, a holder A keeps a lock
// (session TTL 10 s) and a third party tries TryLock on it after the kill.
func s3EtcdMutex(dir string, watch time.Duration) (time.Duration, bool, error) {
	ports := newClusterPorts()
	var cs []*child
	for i := 0; i < 3; i++ {
		c, err := startChild(dir, fmt.Sprintf("etcdmutex-m%d", i), "etcd-node", nil,
			"-i="+fmt.Sprint(i), "-dir="+filepath.Join(dir, fmt.Sprintf("m%d", i)),
			"-peer-ports="+joinInts(ports.peer), "-client-ports="+joinInts(ports.client), "-print-runs=false")
		if err != nil {
			stopAll(cs)
			return 0, false, err
		}
		cs = append(cs, c)
	}
	defer stopAll(cs)
	for _, c := range cs {
		if err := c.waitReady(60 * time.Second); err != nil {
			return 0, false, err
		}
	}
	cli, err := newEtcdClient(etcdEndpoints(ports.client))
	if err != nil {
		return 0, false, err
	}
	defer cli.Close()
	var sessions []*concurrency.Session
	defer func() {
		for _, s := range sessions {
			s.Close()
		}
	}()
	newSess := func() (*concurrency.Session, error) {
		s, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
		if err == nil {
			sessions = append(sessions, s)
		}
		return s, err
	}
	loopSess, err := newSess()
	if err != nil {
		return 0, false, err
	}
	holdSess, err := newSess()
	if err != nil {
		return 0, false, err
	}
	stealSess, err := newSess()
	if err != nil {
		return 0, false, err
	}
	if err := concurrency.NewMutex(holdSess, "/locks/held").Lock(context.Background()); err != nil {
		return 0, false, err
	}
	m := concurrency.NewMutex(loopSess, "/locks/loop")
	loop := func(ctx context.Context, _ string) (func(context.Context) error, error) {
		if err := m.Lock(ctx); err != nil {
			return nil, err
		}
		return m.Unlock, nil
	}
	victim := waitLeaderChild(cs, 10*time.Second)
	if victim == nil {
		return 0, false, errors.New("no etcd leader reported")
	}
	var stolen bool
	gap, err := lockFailover(loop, victim.sigkill, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		sm := concurrency.NewMutex(stealSess, "/locks/held")
		if sm.TryLock(ctx) == nil {
			_ = sm.Unlock(ctx)
			return true
		}
		return false
	}, watch, &stolen)
	return gap, stolen, err
}

func runS3(r *report) error {
	var errs []string
	rows := map[string]*failRow{
		"il":    {kind: "sched", sys: sysInterlock, event: "clustertest.Kill on the Raft leader (its scheduler stops with it)"},
		"etcd":  {kind: "sched", sys: sysEtcdElect, event: "SIGKILL of the process embedding the etcd leader member, which also holds the election (moved there with MoveLeader; session TTL 3 s)"},
		"etcd2": {kind: "sched", sys: sysEtcdElect, event: "SIGKILL of the process embedding the etcd leader member, wherever the election holder is (session TTL 3 s)"},
		"gi":    {kind: "sched", sys: sysGointerlock, event: "SIGKILL of redis-server, restarted 1 s later"},
		"em":    {kind: "lock", sys: sysEtcdMutex, event: "SIGKILL of the etcd leader member; client has all 3 endpoints; A holds another lock (10 s session), B tries TryLock on it"},
		"ilk":   {kind: "lock", sys: sysInterlock + " lock", event: "clustertest.Kill on the Raft leader; loop on a follower; A holds another lock (10 s lease), B tries TryLock on it"},
		"rl":    {kind: "lock", sys: sysRedisLock, event: "SIGKILL of redis-server (no persistence) while A holds a 10 s lock, restarted 1 s later; B tries to lock"},
	}
	for i := 0; i < r.st.s3Reps; i++ {
		keys := []string{"il", "etcd"}
		if r.st.mode == "full" {
			keys = append(keys, "etcd2")
		}
		for _, k := range keys {
			row := rows[k]
			dir := filepath.Join(r.tmp, fmt.Sprintf("s3-%s-%d", k, i))
			gap, ok, st, note, err := s3Sched(row.sys, dir, r.st.s3Watch, k == "etcd")
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", row.sys, err))
				continue
			}
			if ok {
				row.gap = append(row.gap, ms(gap))
			} else {
				row.notes = append(row.notes, fmt.Sprintf("no run within %s of the failure", r.st.s3Watch+10*time.Second))
			}
			row.missed = append(row.missed, float64(st.missed))
			row.dups = append(row.dups, float64(st.dups))
			if note != "" {
				row.notes = append(row.notes, note)
			}
		}
		{
			row := rows["gi"]
			gap, ok, exited, exitAfter, err := s3Gointerlock(filepath.Join(r.tmp, fmt.Sprintf("s3-gi-%d", i)), r.st.s3Watch)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", row.sys, err))
			} else {
				row.exitAfter = append(row.exitAfter, ms(exitAfter))
				if ok {
					row.gap = append(row.gap, ms(gap))
					row.notes = append(row.notes, fmt.Sprintf("%d of 3 replicas exited (log.Fatalf)", exited))
				} else {
					row.notes = append(row.notes, fmt.Sprintf("%d of 3 replicas exited (log.Fatalf); no run after Redis came back", exited))
				}
			}
		}
		{
			row := rows["em"]
			gap, stolen, err := s3EtcdMutex(filepath.Join(r.tmp, fmt.Sprintf("s3-em-%d", i)), r.st.s3Watch)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", row.sys, err))
			} else {
				row.gap = append(row.gap, ms(gap))
				row.dups = append(row.dups, b2f(stolen))
			}
		}
		{
			row := rows["ilk"]
			gap, stolen, err := s3InterlockLock(filepath.Join(r.tmp, fmt.Sprintf("s3-ilk-%d", i)), r.st.s3Watch)
			if errors.Is(err, errInterlockNoLocks) {
				row.notes = append(row.notes, errInterlockNoLocks.Error())
			} else if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", row.sys, err))
			} else {
				row.gap = append(row.gap, ms(gap))
				row.dups = append(row.dups, b2f(stolen))
			}
		}
		{
			row := rows["rl"]
			gap, two, err := s3RedisLock(filepath.Join(r.tmp, fmt.Sprintf("s3-rl-%d", i)))
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", row.sys, err))
			} else {
				row.gap = append(row.gap, ms(gap))
				if two {
					row.dups = append(row.dups, 1)
				} else {
					row.dups = append(row.dups, 0)
				}
			}
		}
	}
	for _, k := range []string{"il", "etcd", "etcd2", "gi", "ilk", "em", "rl"} {
		if k == "etcd2" && r.st.mode != "full" {
			continue
		}
		r.s3 = append(r.s3, *rows[k])
	}
	progress("S3 failover (× %d): next run after interlock %s ms, etcd-election %s ms; next lock after interlock %s ms, etcd-mutex %s ms, redis %s ms; gointerlock: %s",
		r.st.s3Reps, num(rows["il"].gap.median()), num(rows["etcd"].gap.median()), num(rows["ilk"].gap.median()), num(rows["em"].gap.median()), num(rows["rl"].gap.median()), strings.Join(dedupe(rows["gi"].notes), "; "))
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

// s3InterlockLock kills the Raft leader (clustertest.Kill) while a client on a
// follower loops Lock/Unlock, and measures from the kill to the first pair
// that completes. Beforehand a holder A on the other follower takes a lock
// with a 10 s lease; after the kill a third party keeps trying TryLock on it
// through the watch window: success would mean two holders.
func s3InterlockLock(dir string, watch time.Duration) (gap time.Duration, twoHolders bool, err error) {
	nodes, err := startInterlock(dir, 3)
	if err != nil {
		return 0, false, err
	}
	defer func() { stopInterlock(nodes) }()
	l := &interlockLocks{nodes: nodes, ttl: 10 * time.Second}
	leader := interlockLeader(nodes)
	f1, f2 := (leader+1)%3, (leader+2)%3
	lockOn := func(i int) (lockFn, error) { l.first = i; return l.worker(0) }
	loop, err := lockOn(f1)
	if err != nil {
		return 0, false, err
	}
	holder, _ := lockOn(f2)
	if _, err := holder(context.Background(), "held"); err != nil {
		return 0, false, err
	}
	try, err := interlockTryLock(nodes[f1])
	if err != nil {
		return 0, false, err
	}
	gap, err = lockFailover(loop, func() { _ = clustertest.Kill(nodes[leader]); nodes[leader] = nil }, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return try(ctx, "held") == nil
	}, watch, &twoHolders)
	return gap, twoHolders, err
}

// lockFailover runs loop (Lock+Unlock) continuously, calls kill, and returns
// the time from the kill to the first pair completed after it; meanwhile,
// from the moment of the first post-kill pair until watch ends, steal is
// tried every 50 ms and *stolen records whether it ever succeeded.
func lockFailover(loop lockFn, kill func(), steal func() bool, watch time.Duration, stolen *bool) (time.Duration, error) {
	killed := make(chan time.Time, 1)
	done := make(chan time.Time, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		var k time.Time
		for {
			select {
			case <-stop:
				return
			case k = <-killed:
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			unlock, err := loop(ctx, "loop")
			if err == nil {
				err = unlock(ctx)
			}
			cancel()
			if err == nil && !k.IsZero() {
				done <- time.Now()
				return
			}
			if err != nil {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	time.Sleep(500 * time.Millisecond)
	t := time.Now()
	kill()
	killed <- t
	var at time.Time
	select {
	case at = <-done:
	case <-time.After(20 * time.Second):
		return 0, errors.New("no Lock+Unlock completed within 20 s of the kill")
	}
	for time.Since(t) < watch {
		if steal() {
			*stolen = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return at.Sub(t), nil
}

// interlockTryLock finds Node.TryLock by reflection, like interlockLockMethod.
func interlockTryLock(n *cluster.Node) (func(ctx context.Context, name string) error, error) {
	m := reflect.ValueOf(n).MethodByName("TryLock")
	if !m.IsValid() {
		return nil, errInterlockNoLocks
	}
	return func(ctx context.Context, name string) error {
		out := m.Call([]reflect.Value{reflect.ValueOf(ctx), reflect.ValueOf(name), reflect.ValueOf(10 * time.Second)})
		if e := out[1].Interface(); e != nil {
			return e.(error)
		}
		return nil
	}, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// etcdMoveLeaderToHolder makes the replica that holds the election also the
// etcd leader (Maintenance.MoveLeader), and returns it.
func etcdMoveLeaderToHolder(cs []*child, leader *child) (*child, error) {
	var holder *child
	for deadline := time.Now().Add(10 * time.Second); holder == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, c := range cs {
			if c.isHolder() {
				holder = c
			}
		}
	}
	if holder == nil {
		return nil, errors.New("no election holder reported")
	}
	if holder == leader {
		return holder, nil
	}
	ep := func(c *child) string { return c.clientEndpoint }
	hc, err := newEtcdClient([]string{ep(holder)})
	if err != nil {
		return nil, err
	}
	defer hc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := hc.Status(ctx, ep(holder))
	if err != nil {
		return nil, err
	}
	lc, err := newEtcdClient([]string{ep(leader)})
	if err != nil {
		return nil, err
	}
	defer lc.Close()
	if _, err := lc.MoveLeader(ctx, st.Header.MemberId); err != nil {
		return nil, fmt.Errorf("move etcd leader to the election holder: %w", err)
	}
	for !holder.isLeader() {
		if ctx.Err() != nil {
			return nil, errors.New("etcd leader did not move to the election holder")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return holder, nil
}

// waitLeaderChild returns the child that reports being the leader, waiting
// up to timeout for one to say so, or nil.
func waitLeaderChild(cs []*child, timeout time.Duration) *child {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, c := range cs {
			if c.isLeader() {
				return c
			}
		}
	}
	return nil
}
