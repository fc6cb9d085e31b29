package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	sysInterlock = "Interlock"
	// sysLocalTickers is S5's reference of one timer per job, no
	// coordination.
	sysLocalTickers = "local tickers, no coordination"
	// sysUnclustered is Interlock's scheduler with no cluster, in S5.
	sysUnclustered = "Interlock scheduler, no cluster"
	// sysInterlockWAL is Interlock with LogStore wal, in S2.
	sysInterlockWAL = "Interlock, LogStore wal"
	// sysInterlockLock is Interlock's lock in S3, nodes in child processes.
	sysInterlockLock = "Interlock lock"
	sysGointerlock   = "gointerlock v1.1.1 + Redis"
	sysEtcdElect     = "etcd Election, leader runs all (gRPC, default timing)"
	// sysEtcdElectEq is the etcd recipe with its members on Interlock's
	// Raft timing (etcdEqualTiming), in S4.
	sysEtcdElectEq = "etcd Election, leader runs all (gRPC, equal timing)"
	sysEtcdMutex   = "etcd Mutex, gRPC, default timing"
	// sysEtcdMutexEq is etcd's Mutex over gRPC on loopback with etcd's
	// Raft on Interlock's timing (etcdEqualTiming).
	sysEtcdMutexEq = "etcd Mutex, gRPC, equal timing"
	// sysEtcdMutexInproc is etcd's Mutex through its in-process client
	// (v3client: function calls into the member, no socket), on
	// Interlock's timing: called as Interlock is, in the process.
	sysEtcdMutexInproc = "etcd Mutex, in-process v3client, equal timing"
	sysRedisLock       = "Redis SET NX PX + Lua unlock"
)

// s1Job is the pair of jobs every S1 replica runs at once.
var s1Jobs = []jobDef{{"s1-100ms", 100 * time.Millisecond}, {"s1-1s", time.Second}}

func s1JobsFlag() string {
	var parts []string
	for _, j := range s1Jobs {
		parts = append(parts, j.name+":"+j.interval.String()+":1")
	}
	return strings.Join(parts, ",")
}

type tickStats struct {
	ticks, runs, dups, missed int
	p50, p99, max             time.Duration
}

// analyzeTicks counts runs per epoch-aligned tick k (at k×d) for the ticks
// in [ws, we). A run with a tick index is counted for that tick; a run
// without one (tick < 0, gointerlock) is attributed to the interval it
// started in. Lateness is start minus the tick's instant.
func analyzeTicks(runs []runRec, job string, d time.Duration, ws, we time.Time) tickStats {
	first := (ws.UnixNano() + int64(d) - 1) / int64(d)
	last := (we.UnixNano()+int64(d)-1)/int64(d) - 1 // k×d < we
	counts := map[int64]int{}
	var late durs
	for _, r := range runs {
		if r.job != job {
			continue
		}
		k := r.tick
		if k < 0 {
			k = r.start.UnixNano() / int64(d)
		}
		if k < first || k > last {
			continue
		}
		counts[k]++
		late = append(late, r.start.Sub(time.Unix(0, k*int64(d))))
	}
	st := tickStats{ticks: int(last - first + 1)}
	for k := first; k <= last; k++ {
		c := counts[k]
		st.runs += c
		if c == 0 {
			st.missed++
		} else {
			st.dups += c - 1
		}
	}
	s := late.sorted()
	st.p50, st.p99 = pctSorted(s, 50), pctSorted(s, 99)
	if len(s) > 0 {
		st.max = s[len(s)-1]
	}
	return st
}

// childArgs returns the arguments of replica i of system sys.
type clusterPorts struct {
	gossip, raft, peer, client []int
}

func newClusterPorts() clusterPorts {
	p := freePorts(12)
	return clusterPorts{gossip: p[0:3], raft: p[3:6], peer: p[6:9], client: p[9:12]}
}

func joinInts(v []int) string {
	var s []string
	for _, x := range v {
		s = append(s, strconv.Itoa(x))
	}
	return strings.Join(s, ",")
}

// startReplicas starts the three replicas of sys as child processes, the
// i-th after i×stagger, and waits until all are ready.
func startReplicas(sys, dir, jobs string, stagger time.Duration, rec *recorder, redisAddr string, extra ...string) ([]*child, error) {
	return startReplicasVia(nil, sys, dir, jobs, stagger, rec, redisAddr, extra...)
}

// startReplicasVia is startReplicas with every connection between replicas
// (and to Redis) through part's proxies, when part is not nil.
func startReplicasVia(part *partitioner, sys, dir, jobs string, stagger time.Duration, rec *recorder, redisAddr string, extra ...string) ([]*child, error) {
	ports := newClusterPorts()
	var real clusterPorts // the ports replicas listen on behind the proxies
	if part != nil {
		real = newClusterPorts()
		for i := 0; i < 3; i++ {
			var err error
			switch sys {
			case sysInterlock, sysInterlockLock:
				err = part.proxy(ports.raft[i], real.raft[i], i)
			case sysEtcdElect:
				if err = part.proxy(ports.peer[i], real.peer[i], i); err == nil {
					err = part.proxy(ports.client[i], real.client[i], i)
				}
			}
			if err != nil {
				return nil, err
			}
		}
		if sys == sysGointerlock {
			_, p, _ := strings.Cut(redisAddr, ":")
			target, _ := strconv.Atoi(p)
			proxyPort := freePorts(1)[0]
			if err := part.proxy(proxyPort, target, -1); err != nil {
				return nil, err
			}
			redisAddr = "127.0.0.1:" + strconv.Itoa(proxyPort)
		}
	}
	var cs []*child
	for i := 0; i < 3; i++ {
		if i > 0 {
			time.Sleep(stagger)
		}
		name := fmt.Sprintf("r%d", i)
		args := []string{"-i=" + strconv.Itoa(i), "-jobs=" + jobs, "-dir=" + filepath.Join(dir, name)}
		var role string
		switch sys {
		case sysInterlock, sysInterlockLock:
			role = "interlock-node"
			if sys == sysInterlockLock {
				role = "interlock-lock-node"
			}
			args = append(args, "-gossip-ports="+joinInts(ports.gossip), "-raft-port="+strconv.Itoa(ports.raft[i]))
			if part != nil {
				args = append(args, "-raft-listen-port="+strconv.Itoa(real.raft[i]))
			}
		case sysEtcdElect:
			role = "etcd-node"
			args = append(args, "-peer-ports="+joinInts(ports.peer), "-client-ports="+joinInts(ports.client))
			if part != nil {
				args = append(args, "-peer-listen-port="+strconv.Itoa(real.peer[i]), "-client-listen-port="+strconv.Itoa(real.client[i]))
			}
		case sysGointerlock:
			role = "gointerlock-node"
			args = append(args, "-redis="+redisAddr)
		default:
			return nil, fmt.Errorf("no replicas for %s", sys)
		}
		c, err := startChild(dir, sys2file(sys)+"-"+name, role, rec, append(args, extra...)...)
		if err != nil {
			stopAll(cs)
			return nil, err
		}
		if sys == sysEtcdElect {
			c.clientEndpoint = "127.0.0.1:" + strconv.Itoa(ports.client[i])
		}
		cs = append(cs, c)
	}
	for _, c := range cs {
		if err := c.waitReady(90 * time.Second); err != nil {
			stopAll(cs)
			return nil, err
		}
	}
	return cs, nil
}

func sys2file(s string) string {
	switch s {
	case sysInterlock:
		return "interlock"
	case sysInterlockLock:
		return "interlock-lock"
	case sysEtcdElect:
		return "etcd"
	case sysEtcdElectEq:
		return "etcd-eq"
	case sysGointerlock:
		return "gointerlock"
	}
	return "x"
}

// s1Once runs one repetition of S1 for sys and returns stats per job.
func s1Once(sys string, dur time.Duration, dir, redisAddr string, evidence *[]string) (map[string]tickStats, error) {
	rec := &recorder{}
	cs, err := startReplicas(sys, dir, s1JobsFlag(), 33*time.Millisecond, rec, redisAddr)
	if err != nil {
		return nil, err
	}
	defer stopAll(cs)
	// The window starts on a whole second at least one second after the
	// last replica was ready (gointerlock's first run comes one Interval
	// after start), and every tick in it gets its full start window.
	ws := ceilSecond(time.Now().Add(1100 * time.Millisecond))
	we := ws.Add(dur)
	time.Sleep(time.Until(we.Add(1200 * time.Millisecond)))
	for _, c := range cs {
		if !c.alive() {
			return nil, fmt.Errorf("%s replica %s exited during S1 (%v):\n%s", sys, c.name, c.err, tail(c.logPath))
		}
	}
	out := map[string]tickStats{}
	runs := rec.snapshot()
	bad := false
	for _, j := range s1Jobs {
		out[j.name] = analyzeTicks(runs, j.name, j.interval, ws, we)
		bad = bad || out[j.name].missed > 0 || out[j.name].dups > 0
	}
	if bad && sys == sysInterlock {
		for _, j := range s1Jobs {
			st := out[j.name]
			if st.missed > 0 || st.dups > 0 {
				*evidence = append(*evidence, fmt.Sprintf("%s, %s job, one repetition: %d missed, %d duplicate(s) of %d ticks; lateness p99 %.0f ms, max %.0f ms", sys, j.interval, st.missed, st.dups, st.ticks, ms(st.p99), ms(st.max)))
			}
		}
		for _, c := range cs {
			*evidence = append(*evidence, logEvidence(c, ws.Add(-time.Second), we.Add(2*time.Second))...)
		}
	}
	return out, nil
}

// logEvidence returns a count of a child's WARN/ERROR log lines stamped
// between from and to, and the first few of them.
func logEvidence(c *child, from, to time.Time) []string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return nil
	}
	var hits []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "[WARN]") || strings.Contains(line, "[ERROR]") {
			if f := strings.Fields(line); len(f) > 0 {
				if at, err := time.Parse("2006-01-02T15:04:05.000Z0700", f[0]); err == nil && (at.Before(from) || at.After(to)) {
					continue
				}
			}
			if len(line) > 300 {
				line = line[:300] + "…"
			}
			hits = append(hits, line)
		}
	}
	if len(hits) == 0 {
		return []string{fmt.Sprintf("replica %s logged no warning or error during the window", c.name)}
	}
	out := []string{fmt.Sprintf("replica %s logged %d warning/error line(s) during the window, first ones:", c.name, len(hits))}
	for i := 0; i < len(hits) && i < 3; i++ {
		out = append(out, "`"+strings.ReplaceAll(hits[i], "`", "'")+"`")
	}
	return out
}

type s1Row struct {
	sys                       string
	interval                  time.Duration
	ticks, runs, dups, missed rep
	p50, p99                  rep
}

func runS1(r *report) error {
	systems := []string{sysInterlock, sysGointerlock, sysEtcdElect}
	rows := map[string]*s1Row{}
	var order []string
	for _, sys := range systems {
		for _, j := range s1Jobs {
			key := sys + j.name
			rows[key] = &s1Row{sys: sys, interval: j.interval}
			order = append(order, key)
		}
	}
	redis, err := startRedis(filepath.Join(r.tmp, "redis-s1"), false)
	if err != nil {
		return err
	}
	defer redis.stop()
	var errs []string
	for i := 0; i < r.st.s1Reps; i++ {
		for _, sys := range systems {
			dir := filepath.Join(r.tmp, fmt.Sprintf("s1-%s-%d", sys2file(sys), i))
			res, err := s1Once(sys, r.st.s1Dur, dir, redis.addr, &r.s1Evidence)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			for _, j := range s1Jobs {
				row, s := rows[sys+j.name], res[j.name]
				row.ticks = append(row.ticks, float64(s.ticks))
				row.runs = append(row.runs, float64(s.runs))
				row.dups = append(row.dups, float64(s.dups))
				row.missed = append(row.missed, float64(s.missed))
				row.p50 = append(row.p50, ms(s.p50))
				row.p99 = append(row.p99, ms(s.p99))
			}
		}
	}
	for _, k := range order {
		r.s1 = append(r.s1, *rows[k])
	}
	var parts []string
	for _, k := range order {
		row := rows[k]
		if row.interval == 100*time.Millisecond {
			parts = append(parts, fmt.Sprintf("%s dup=%s miss=%s", short(row.sys), num(row.dups.median()), num(row.missed.median())))
		}
	}
	progress("S1 per-tick correctness (100 ms job, %s × %d): %s", r.st.s1Dur, r.st.s1Reps, strings.Join(parts, "; "))
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// isInterlock reports whether a row is Interlock's, with either log store.
func isInterlock(sys string) bool { return strings.HasPrefix(sys, sysInterlock) }

func short(sys string) string {
	switch sys {
	case sysInterlock:
		return "interlock"
	case sysInterlockWAL:
		return "interlock-wal"
	case sysGointerlock:
		return "gointerlock"
	case sysEtcdElect:
		return "etcd-election"
	case sysEtcdElectEq:
		return "etcd-election-eq"
	case sysEtcdMutex:
		return "etcd-mutex"
	case sysEtcdMutexEq:
		return "etcd-mutex-eq"
	case sysEtcdMutexInproc:
		return "etcd-mutex-inproc-eq"
	case sysRedisLock:
		return "redis-lock"
	}
	return sys
}

// ceilSecond rounds t up to a whole second.
func ceilSecond(t time.Time) time.Time {
	if tt := t.Truncate(time.Second); !tt.Equal(t) {
		return tt.Add(time.Second)
	}
	return t
}
