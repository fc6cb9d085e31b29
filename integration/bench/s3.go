package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
)

const s3Interval = 100 * time.Millisecond

type failRow struct {
	kind string // "sched" or "lock"
	// class groups the rows that are compared: the same failure, done to
	// each system (replica kill, SIGSTOP, quorum or store loss).
	class string
	sys   string
	event string
	gap   rep // ms from the failure to the next successful run / acquire
	// longest is the longest stretch with no run, ms, from the failure to
	// the end of the window: after a partition the cut-off replica may run
	// the next tick at once and still leave a hole later.
	longest rep
	missed  rep // ticks in the watch window with no run
	dups    rep // extra runs of a tick, or a second holder of a lock
	notes   []string
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

// The failures S3 does to a system running a 100 ms job.
const (
	faultKill   = "replica kill"
	faultStop   = "SIGSTOP 5 s"
	faultQuorum = "quorum or store loss"
	faultPart   = "partition 10 s"
)

// s3StopFor is how long the SIGSTOP case keeps the process stopped, and
// s3RestartAfter how long the quorum-loss case keeps two replicas down.
const (
	s3StopFor      = 5 * time.Second
	s3RestartAfter = time.Second
	s3PartFor      = 10 * time.Second
)

// s3Sched does fault to three replicas of sys, each its own process, while
// a 100 ms job runs: SIGKILL of the job-running leader (Interlock: the Raft
// leader; etcd: the etcd leader member, which also holds the election when
// moveLeaderToHolder; gointerlock: the replica that ran the last tick),
// SIGSTOP of the same process for 5 s, or SIGKILL of it and one more
// replica, both restarted from their data 1 s later.
func s3Sched(sys, dir, fault string, watch time.Duration, moveLeaderToHolder bool, redisAddr string) (gap, longest time.Duration, ok bool, st tickStats, note string, err error) {
	rec := &recorder{}
	job := "fail"
	var cs []*child
	var part *partitioner
	if fault == faultPart {
		part = newPartitioner(func() []int {
			var pids []int
			for _, c := range cs {
				pids = append(pids, c.pid())
			}
			return pids
		})
		defer part.close()
	}
	cs, err = startReplicasVia(part, sys, dir, job+":"+s3Interval.String()+":1", 0, rec, redisAddr)
	if err != nil {
		return 0, 0, false, st, "", err
	}
	defer func() { stopAll(cs) }()
	time.Sleep(1500 * time.Millisecond)
	var victim *child
	if sys == sysGointerlock {
		// gointerlock has no leader: the replica that ran the last tick
		// is the one whose loss the others must cover.
		runs := rec.snapshot()
		if len(runs) == 0 {
			return 0, 0, false, st, "", errors.New("no gointerlock run before the failure")
		}
		last := runs[len(runs)-1].node
		for _, c := range cs {
			if c.name == last {
				victim = c
			}
		}
	} else {
		victim = waitLeaderChild(cs, 10*time.Second)
	}
	if victim == nil {
		return 0, 0, false, st, "", errors.New("no leader reported")
	}
	if sys == sysEtcdElect && moveLeaderToHolder {
		var err error
		if victim, err = etcdMoveLeaderToHolder(cs, victim); err != nil {
			return 0, 0, false, st, "", err
		}
	}
	// Who ran the last tick before the failure (for etcd: the election holder).
	runs := rec.snapshot()
	var lastRunner string
	for _, r := range runs {
		lastRunner = r.node
	}
	t := time.Now()
	switch fault {
	case faultKill:
		victim.sigkill()
	case faultPart:
		for i, c := range cs {
			if c == victim {
				part.isolate(i)
			}
		}
		time.AfterFunc(s3PartFor, func() { part.isolate(-1) })
		watch += s3PartFor
	case faultStop:
		victim.signal(syscall.SIGSTOP)
		time.AfterFunc(s3StopFor, func() { victim.signal(syscall.SIGCONT) })
		watch += s3StopFor
	case faultQuorum:
		second := cs[0]
		if second == victim {
			second = cs[1]
		}
		victim.sigkill()
		second.sigkill()
		<-victim.exited
		<-second.exited
		time.Sleep(time.Until(t.Add(s3RestartAfter)))
		for k, c := range cs {
			if c != victim && c != second {
				continue
			}
			nc, err := c.restart()
			if err != nil {
				return 0, 0, false, st, "", fmt.Errorf("restart %s: %w", c.name, err)
			}
			cs[k] = nc
		}
		watch += s3RestartAfter
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
	// Count from the first whole tick after the failure to the end of the
	// window, less one interval so each tick had its start window.
	st = analyzeTicks(runs, job, s3Interval, t, t.Add(watch-s3Interval-StartSlack))
	longest = longestGap(runs, job, t, t.Add(watch))
	if sys == sysEtcdElect {
		if lastRunner == victim.name {
			note = "the failed process held the election"
		} else {
			note = "the failed process did not hold the election"
		}
	}
	exited := 0
	for _, c := range cs {
		if !c.alive() && (fault != faultKill || c != victim) && (fault != faultQuorum) {
			exited++
		}
	}
	if exited > 0 {
		note = strings.TrimPrefix(note+fmt.Sprintf("; %d replica(s) exited on their own", exited), "; ")
	}
	return gap, longest, ok, st, note, nil
}

// longestGap is the longest time in [from, to] with no run of job.
func longestGap(runs []runRec, job string, from, to time.Time) time.Duration {
	var starts []time.Time
	for _, r := range runs {
		if r.job == job && !r.start.Before(from) && !r.start.After(to) {
			starts = append(starts, r.start)
		}
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i].Before(starts[j]) })
	prev, worst := from, time.Duration(0)
	for _, s := range append(starts, to) {
		worst = max(worst, s.Sub(prev))
		prev = s
	}
	return worst
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
// With equal, the members run on Interlock's Raft timing (etcdEqualTiming).
func s3EtcdMutex(dir string, watch time.Duration, equal bool) (time.Duration, bool, error) {
	ports := newClusterPorts()
	var cs []*child
	for i := 0; i < 3; i++ {
		c, err := startChild(dir, fmt.Sprintf("etcdmutex-m%d", i), "etcd-node", nil,
			"-i="+fmt.Sprint(i), "-dir="+filepath.Join(dir, fmt.Sprintf("m%d", i)),
			"-peer-ports="+joinInts(ports.peer), "-client-ports="+joinInts(ports.client), "-print-runs=false",
			fmt.Sprintf("-etcd-equal-timing=%t", equal))
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
	type spec struct {
		key, class, sys, fault, event string
		moveLeader                    bool
		fullOnly                      bool
	}
	specs := []spec{
		{"il-kill", faultKill, sysInterlock, faultKill, "SIGKILL of the Raft leader's process", false, false},
		{"etcd-kill", faultKill, sysEtcdElect, faultKill, "SIGKILL of the process embedding the etcd leader member, which also holds the election (moved there with MoveLeader; session TTL 3 s)", true, false},
		{"etcd2-kill", faultKill, sysEtcdElect, faultKill, "SIGKILL of the process embedding the etcd leader member, wherever the election holder is (session TTL 3 s)", false, true},
		{"gi-kill", faultKill, sysGointerlock, faultKill, "SIGKILL of the replica that ran the last tick", false, false},
		{"il-stop", faultStop, sysInterlock, faultStop, "SIGSTOP of the Raft leader's process for 5 s, then SIGCONT", false, false},
		{"etcd-stop", faultStop, sysEtcdElect, faultStop, "SIGSTOP for 5 s of the process embedding the etcd leader member and holding the election, then SIGCONT", true, false},
		{"gi-stop", faultStop, sysGointerlock, faultStop, "SIGSTOP for 5 s of the replica that ran the last tick, then SIGCONT", false, false},
		{"il-part", faultPart, sysInterlock, faultPart, "the Raft leader's process cut off from the other two for 10 s (its Raft/RPC connections, through proxies the bench controls; gossip is not cut)", false, false},
		{"etcd-part", faultPart, sysEtcdElect, faultPart, "the process embedding the etcd leader member and holding the election cut off from the other two for 10 s (etcd peer and client connections, through proxies the bench controls)", true, false},
		{"gi-part", faultPart, sysGointerlock, faultPart, "the replica that ran the last tick cut off from Redis for 10 s (through a proxy the bench controls)", false, false},
		{"il-quorum", faultQuorum, sysInterlock, faultQuorum, "SIGKILL of 2 of 3 processes (the leader and one more), both restarted from their DataDir 1 s later", false, true},
		{"etcd-quorum", faultQuorum, sysEtcdElect, faultQuorum, "SIGKILL of 2 of 3 processes (the leader and election holder, and one more), both restarted from their data 1 s later", true, true},
	}
	rows := map[string]*failRow{}
	var order []string
	for _, sp := range specs {
		if sp.fullOnly && r.st.mode != "full" {
			continue
		}
		rows[sp.key] = &failRow{kind: "sched", class: sp.class, sys: sp.sys, event: sp.event}
		order = append(order, sp.key)
	}
	if r.st.mode == "full" {
		rows["gi-store"] = &failRow{kind: "sched", class: faultQuorum, sys: sysGointerlock, event: "SIGKILL of the one redis-server, restarted 1 s later"}
		order = append(order, "gi-store")
	}
	rows["ilk"] = &failRow{kind: "lock", class: faultKill, sys: sysInterlockLock, event: "SIGKILL of the Raft leader's process; loop on a follower process; A holds another lock (10 s lease), B tries TryLock on it"}
	rows["em"] = &failRow{kind: "lock", class: faultKill, sys: sysEtcdMutex, event: "SIGKILL of the etcd leader member's process; the client has all 3 endpoints and no per-call timeout; A holds another lock (10 s session), B tries TryLock on it"}
	rows["rl"] = &failRow{kind: "lock", class: "store loss", sys: sysRedisLock, event: "SIGKILL of redis-server (no persistence) while A holds a 10 s lock, restarted 1 s later; B tries to lock (the gap is that 1 s restart delay, which the bench chose)"}
	rows["em-eq"] = &failRow{kind: "lock", class: faultKill, sys: sysEtcdMutexEq, event: "as the row above, with the etcd members on Interlock's Raft timing"}
	order = append(order, "ilk", "em", "em-eq")
	if r.st.mode == "full" {
		rows["ilk-quorum"] = &failRow{kind: "lock", class: "store loss", sys: sysInterlockLock, event: "SIGKILL of 2 of 3 processes (the leader and the one not holding A's lock) while A holds a 10 s lock, both restarted from their DataDir 1 s later; the restarted follower B tries TryLock on it; the gap is to A's process's next Lock+Unlock of another name"}
		order = append(order, "ilk-quorum")
	}
	order = append(order, "rl")
	keep := parseOnly(*fS3Rows)
	if keep != nil {
		var kept []string
		for _, k := range order {
			if keep[k] {
				kept = append(kept, k)
			} else {
				delete(rows, k)
			}
		}
		order = kept
	}

	redisSrv, err := startRedis(filepath.Join(r.tmp, "redis-s3"), false)
	if err != nil {
		return err
	}
	defer redisSrv.stop()
	record := func(row *failRow, gap, longest time.Duration, ok bool, st tickStats, note string, watch time.Duration) {
		row.longest = append(row.longest, ms(longest))
		if ok {
			row.gap = append(row.gap, ms(gap))
		} else {
			row.gap = append(row.gap, math.NaN())
			row.notes = append(row.notes, fmt.Sprintf("no run within %s of the failure", watch+10*time.Second))
		}
		row.missed = append(row.missed, float64(st.missed))
		row.dups = append(row.dups, float64(st.dups))
		if note != "" {
			row.notes = append(row.notes, note)
		}
	}
	for i := 0; i < r.st.s3Reps; i++ {
		for _, sp := range specs {
			row := rows[sp.key]
			if row == nil {
				continue
			}
			dir := filepath.Join(r.tmp, fmt.Sprintf("s3-%s-%d", sp.key, i))
			gap, longest, ok, st, note, err := s3Sched(sp.sys, dir, sp.fault, r.st.s3Watch, sp.moveLeader, redisSrv.addr)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s, %s: %v", sp.sys, sp.fault, err))
				continue
			}
			record(row, gap, longest, ok, st, note, r.st.s3Watch)
		}
		if row := rows["gi-store"]; row != nil {
			gap, ok, exited, exitAfter, err := s3Gointerlock(filepath.Join(r.tmp, fmt.Sprintf("s3-gi-%d", i)), r.st.s3Watch)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", row.sys, err))
			} else {
				row.exitAfter = append(row.exitAfter, ms(exitAfter))
				if ok {
					row.gap = append(row.gap, ms(gap))
					row.notes = append(row.notes, fmt.Sprintf("%d of 3 replicas exited (log.Fatalf)", exited))
				} else {
					row.gap = append(row.gap, math.NaN())
					row.notes = append(row.notes, fmt.Sprintf("%d of 3 replicas exited (log.Fatalf); no run after Redis came back", exited))
				}
			}
		}
		if row := rows["ilk-quorum"]; row != nil {
			gap, stolen, err := s3InterlockLockQuorum(filepath.Join(r.tmp, fmt.Sprintf("s3-ilkq-%d", i)), r.st.s3Watch)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s, quorum loss: %v", row.sys, err))
			} else {
				row.gap = append(row.gap, ms(gap))
				row.dups = append(row.dups, b2f(stolen))
			}
		}
		for _, k := range []string{"em", "em-eq"} {
			row := rows[k]
			if row == nil {
				continue
			}
			gap, stolen, err := s3EtcdMutex(filepath.Join(r.tmp, fmt.Sprintf("s3-%s-%d", k, i)), r.st.s3Watch, k == "em-eq")
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", row.sys, err))
			} else {
				row.gap = append(row.gap, ms(gap))
				row.dups = append(row.dups, b2f(stolen))
			}
		}
		if row := rows["ilk"]; row != nil {
			gap, stolen, err := s3InterlockLock(filepath.Join(r.tmp, fmt.Sprintf("s3-ilk-%d", i)), r.st.s3Watch)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", row.sys, err))
			} else {
				row.gap = append(row.gap, ms(gap))
				row.dups = append(row.dups, b2f(stolen))
			}
		}
		if row := rows["rl"]; row != nil {
			gap, two, err := s3RedisLock(filepath.Join(r.tmp, fmt.Sprintf("s3-rl-%d", i)))
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", row.sys, err))
			} else {
				row.gap = append(row.gap, ms(gap))
				row.dups = append(row.dups, b2f(two))
			}
		}
	}
	for _, k := range order {
		r.s3 = append(r.s3, *rows[k])
	}
	for _, k := range []string{"il-kill", "etcd-kill", "gi-kill", "il-stop", "etcd-stop", "gi-stop", "ilk", "em", "em-eq"} {
		if rows[k] == nil {
			rows[k] = &failRow{}
		}
	}
	progress("S3 failover (× %d): next run after a leader kill: interlock %s ms, etcd-election %s ms, gointerlock %s ms; after SIGSTOP 5 s: %s / %s / %s ms, duplicates %s / %s / %s; next lock after a leader kill: interlock %s ms, etcd-mutex %s ms (equal timing %s ms)",
		r.st.s3Reps, num(rows["il-kill"].gap.median()), num(rows["etcd-kill"].gap.median()), num(rows["gi-kill"].gap.median()),
		num(rows["il-stop"].gap.median()), num(rows["etcd-stop"].gap.median()), num(rows["gi-stop"].gap.median()),
		num(rows["il-stop"].dups.median()), num(rows["etcd-stop"].dups.median()), num(rows["gi-stop"].dups.median()),
		num(rows["ilk"].gap.median()), num(rows["em"].gap.median()), num(rows["em-eq"].gap.median()))
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

// s3InterlockLock runs three Interlock nodes as child processes, has a
// holder A on one follower take the lock "held" (10 s lease) and the other
// follower loop Lock+Unlock on "loop", then SIGKILLs the leader's process
// and measures from the kill to the first pair completed after it. Through
// the watch window the looping follower also tries TryLock on "held" every
// 50 ms: success would mean two holders.
func s3InterlockLock(dir string, watch time.Duration) (gap time.Duration, twoHolders bool, err error) {
	rec := &recorder{}
	cs, err := startReplicas(sysInterlockLock, dir, "", 0, rec, "")
	if err != nil {
		return 0, false, err
	}
	defer stopAll(cs)
	leader := waitLeaderChild(cs, 10*time.Second)
	if leader == nil {
		return 0, false, errors.New("no leader reported")
	}
	var fs []*child
	for _, c := range cs {
		if c != leader {
			fs = append(fs, c)
		}
	}
	looper, holder := fs[0], fs[1]
	holder.send("hold")
	if !waitRun(rec, "held", time.Time{}, 10*time.Second) {
		return 0, false, errors.New("holder never got the lock")
	}
	looper.send("loop")
	if !waitRun(rec, "pair", time.Time{}, 10*time.Second) {
		return 0, false, errors.New("no Lock+Unlock before the kill")
	}
	time.Sleep(500 * time.Millisecond)
	t := time.Now()
	leader.sigkill()
	if !waitRun(rec, "pair", t, 20*time.Second) {
		return 0, false, errors.New("no Lock+Unlock completed within 20 s of the kill")
	}
	gap, _ = gapAfter(rec.snapshot(), "pair", t)
	for time.Since(t) < watch {
		looper.send("try")
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // the last tries' answers
	_, twoHolders = gapAfter(rec.snapshot(), "try-ok", t)
	return gap, twoHolders, nil
}

// s3InterlockLockQuorum is the lock's store loss for Interlock: a holder A
// on one follower takes "held" (10 s lease) and loops Lock+Unlock on
// "loop"; the leader and the other follower are SIGKILLed together and
// restarted from their DataDirs 1 s later. The gap runs from the kill to
// A's next completed pair; through the watch window after the restart,
// the restarted follower B tries TryLock on "held": success would mean two
// holders, as with a Redis that forgot its locks.
func s3InterlockLockQuorum(dir string, watch time.Duration) (gap time.Duration, twoHolders bool, err error) {
	rec := &recorder{}
	cs, err := startReplicas(sysInterlockLock, dir, "", 0, rec, "")
	if err != nil {
		return 0, false, err
	}
	defer func() { stopAll(cs) }()
	leader := waitLeaderChild(cs, 10*time.Second)
	if leader == nil {
		return 0, false, errors.New("no leader reported")
	}
	var holder, other *child
	for _, c := range cs {
		switch {
		case c == leader:
		case holder == nil:
			holder = c
		default:
			other = c
		}
	}
	holder.send("hold")
	if !waitRun(rec, "held", time.Time{}, 10*time.Second) {
		return 0, false, errors.New("holder never got the lock")
	}
	holder.send("loop")
	if !waitRun(rec, "pair", time.Time{}, 10*time.Second) {
		return 0, false, errors.New("no Lock+Unlock before the kill")
	}
	time.Sleep(500 * time.Millisecond)
	t := time.Now()
	leader.sigkill()
	other.sigkill()
	time.Sleep(time.Until(t.Add(s3RestartAfter)))
	for k, c := range cs {
		if c != leader && c != other {
			continue
		}
		nc, err := c.restart()
		if err != nil {
			return 0, false, fmt.Errorf("restart %s: %w", c.name, err)
		}
		cs[k] = nc
		if c == other {
			other = nc
		}
	}
	if !waitRun(rec, "pair", t, 30*time.Second) {
		return 0, false, errors.New("no Lock+Unlock completed within 30 s of the kill")
	}
	gap, _ = gapAfter(rec.snapshot(), "pair", t)
	for end := time.Now().Add(watch); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		other.send("try")
	}
	time.Sleep(time.Second) // the last tries' answers
	_, twoHolders = gapAfter(rec.snapshot(), "try-ok", t)
	return gap, twoHolders, nil
}

// waitRun waits up to timeout for a RUN of job that started after after.
func waitRun(rec *recorder, job string, after time.Time, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, ok := gapAfter(rec.snapshot(), job, after); ok {
			return true
		}
	}
	return false
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
			// No per-attempt timeout: each client retries by itself (etcd's
			// over all its endpoints, Interlock's follower by re-sending
			// to the new leader). The bound is only a backstop beyond the
			// 20 s this function waits.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
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
