package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
	"github.com/interlockraft/interlock/scheduler"
)

// scaleRec counts runs per (job, tick) in a window of ticks and keeps every
// run's lateness, without locks.
type scaleRec struct {
	jobs    int
	k0      int64 // first tick of the window
	nticks  int64
	counts  []atomic.Int32 // jobs × nticks
	late    []int32        // microseconds
	nlate   atomic.Int64
	outside atomic.Int64
}

func newScaleRec(jobs int, k0, nticks int64) *scaleRec {
	return &scaleRec{jobs: jobs, k0: k0, nticks: nticks,
		counts: make([]atomic.Int32, int64(jobs)*nticks),
		late:   make([]int32, int64(jobs)*nticks*2)}
}

func (s *scaleRec) add(job int, tick int64, at time.Time, start time.Time) {
	i := tick - s.k0
	if i < 0 || i >= s.nticks {
		s.outside.Add(1)
		return
	}
	s.counts[int64(job)*s.nticks+i].Add(1)
	if n := s.nlate.Add(1) - 1; n < int64(len(s.late)) {
		s.late[n] = int32(start.Sub(at) / time.Microsecond)
	}
}

type scaleStats struct {
	expected, runs, dups, missed int
	perSec                       float64
	p50, p99, max                time.Duration
	cpu                          float64 // % of one core, whole process
	failed                       uint64
}

func (s *scaleRec) stats(window time.Duration) scaleStats {
	st := scaleStats{expected: s.jobs * int(s.nticks)}
	for i := range s.counts {
		c := int(s.counts[i].Load())
		st.runs += c
		if c == 0 {
			st.missed++
		} else {
			st.dups += c - 1
		}
	}
	st.perSec = float64(st.runs) / window.Seconds()
	n := min(s.nlate.Load(), int64(len(s.late)))
	d := make(durs, n)
	for i := int64(0); i < n; i++ {
		d[i] = time.Duration(s.late[i]) * time.Microsecond
	}
	sd := d.sorted()
	st.p50, st.p99 = pctSorted(sd, 50), pctSorted(sd, 99)
	if len(sd) > 0 {
		st.max = sd[len(sd)-1]
	} else {
		st.p50, st.p99, st.max = noRuns, noRuns, noRuns
	}
	return st
}

// noRuns marks a lateness with no sample; ms turns it into NaN ("–").
const noRuns = time.Duration(-1 << 62)

// scaleWindow picks the window of whole-second ticks: it starts warm after
// now, and lasts dur.
func scaleWindow(warm, dur time.Duration) (k0, nticks int64, ws, we time.Time) {
	ws = ceilSecond(time.Now().Add(warm))
	k0 = ws.Unix()
	nticks = int64(dur / time.Second)
	return k0, nticks, ws, ws.Add(dur)
}

// s5Interlock runs jobs jobs at 1 s on the three nodes for dur. With prof,
// it also profiles the process's CPU over the window into profPath and
// counts the Raft entries and commands committed in it.
func s5Interlock(nodes []*cluster.Node, jobs int, dur time.Duration, prof *s5Profile, profPath string) (scaleStats, error) {
	prefix := fmt.Sprintf("s5-%d-%d-", jobs, time.Now().UnixNano())
	names := make([]string, jobs)
	for j := range names {
		names[j] = fmt.Sprintf("%s%d", prefix, j)
	}
	var rec atomic.Pointer[scaleRec]
	scheds := make([]*scheduler.Scheduler, len(nodes))
	for i, n := range nodes {
		s := scheduler.New(scheduler.Options{Cluster: n})
		for j := 0; j < jobs; j++ {
			j := j
			err := s.Add(scheduler.Job{Name: names[j], Interval: time.Second, Func: func(_ context.Context, r scheduler.Run) error {
				now := time.Now()
				if sr := rec.Load(); sr != nil {
					sr.add(j, r.Tick, r.At, now)
				}
				return nil
			}})
			if err != nil {
				return scaleStats{}, err
			}
		}
		scheds[i] = s
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range scheds {
		wg.Add(1)
		go func(s *scheduler.Scheduler) { defer wg.Done(); _ = s.Run(ctx) }(s)
	}
	defer func() { cancel(); wg.Wait() }()
	// Wait until every node sees all three registered for the last job.
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok := true
		for _, n := range nodes {
			if len(clustertest.Candidates(n, names[jobs-1])) < len(nodes) {
				ok = false
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return scaleStats{}, errors.New("jobs not registered on all nodes within 60 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	k0, nt, ws, we := scaleWindow(300*time.Millisecond, dur)
	rec.Store(newScaleRec(jobs, k0, nt))
	time.Sleep(time.Until(ws))
	var stopProf func()
	var applied0, entries0, commands0 uint64
	if prof != nil {
		var err error
		if stopProf, err = startS5Profile(profPath); err != nil {
			prof.err = err.Error()
		}
		applied0, entries0, commands0 = raftCounts(nodes)
	}
	var burst chan cpuBurst
	if prof != nil {
		burst = make(chan cpuBurst, 1)
		go func() { burst <- sampleBurst(ctx, ws, we) }()
	}
	c0, _ := sampleProc(os.Getpid())
	time.Sleep(time.Until(we))
	c1, _ := sampleProc(os.Getpid())
	if prof != nil {
		prof.burst = <-burst
		applied1, entries1, commands1 := raftCounts(nodes)
		if stopProf != nil {
			stopProf()
		}
		prof.entries, prof.batched, prof.commands = applied1-applied0, entries1-entries0, commands1-commands0
	}
	time.Sleep(1200 * time.Millisecond) // late runs of the last tick
	st := rec.Load().stats(dur)
	st.cpu = cpuPct(c0, c1)
	if prof != nil {
		prof.jobs, prof.window, prof.cpu, prof.p99, prof.missed, prof.runs = jobs, dur, st.cpu, st.p99, st.missed, st.runs
	}
	for _, s := range scheds {
		for _, js := range s.Stats() {
			st.failed += js.ClaimFailures
		}
	}
	return st, nil
}

// raftCounts returns the highest applied index of the nodes (the leader's,
// or the most advanced), and the batch counts summed over them: only a
// leader's batcher counts, so the sum covers a leader change too.
func raftCounts(nodes []*cluster.Node) (applied, entries, commands uint64) {
	for _, n := range nodes {
		applied = max(applied, n.AppliedIndex())
		e, c := clustertest.BatchCounts(n)
		entries += e
		commands += c
	}
	return applied, entries, commands
}

// s5Unclustered runs the same jobs on one Interlock Scheduler with no
// cluster: the same timer heap and run start as the clustered nodes, and
// no claim, Raft entry or state machine. Its lateness is what starting
// that many runs at one instant costs this machine through Interlock's
// own scheduler, the part of the clustered figure that coordination does
// not add.
func s5Unclustered(jobs int, dur time.Duration) (scaleStats, error) {
	var rec atomic.Pointer[scaleRec]
	s := scheduler.New(scheduler.Options{})
	for j := 0; j < jobs; j++ {
		j := j
		err := s.Add(scheduler.Job{Name: fmt.Sprintf("s5-local-%d", j), Schedule: scheduler.Every(time.Second), Func: func(_ context.Context, r scheduler.Run) error {
			now := time.Now()
			if sr := rec.Load(); sr != nil {
				sr.add(j, r.At.Unix(), r.At, now)
			}
			return nil
		}})
		if err != nil {
			return scaleStats{}, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// The first tick of a Scheduler comes a second after Run; the window
	// starts after it.
	return measureLocal(&rec, jobs, 1300*time.Millisecond, dur), nil
}

// measureLocal records runs into rec over a window of dur that starts warm
// from now, and returns the window's stats with the process's CPU.
func measureLocal(rec *atomic.Pointer[scaleRec], jobs int, warm, dur time.Duration) scaleStats {
	k0, nt, ws, we := scaleWindow(warm, dur)
	rec.Store(newScaleRec(jobs, k0, nt))
	time.Sleep(time.Until(ws))
	c0, _ := sampleProc(os.Getpid())
	time.Sleep(time.Until(we))
	c1, _ := sampleProc(os.Getpid())
	time.Sleep(500 * time.Millisecond) // late runs of the last tick
	st := rec.Load().stats(dur)
	st.cpu = cpuPct(c0, c1)
	return st
}

// s5Local runs the same jobs on epoch-aligned local tickers with no
// coordination at all: what the elected leader of the etcd recipe does per
// tick, so it bounds what any coordinated scheduler can do on this machine.
func s5Local(jobs int, dur time.Duration) scaleStats {
	ctx, cancel := context.WithCancel(context.Background())
	var rec atomic.Pointer[scaleRec]
	var wg sync.WaitGroup
	for j := 0; j < jobs; j++ {
		wg.Add(1)
		go func(j int) {
			defer wg.Done()
			epochTicker(ctx, time.Second, func(tick int64, start time.Time) {
				if sr := rec.Load(); sr != nil {
					sr.add(j, tick, time.Unix(tick, 0), start)
				}
			})
		}(j)
	}
	st := measureLocal(&rec, jobs, 300*time.Millisecond, dur)
	cancel()
	wg.Wait()
	return st
}

type scaleRow struct {
	sys                  string
	jobs                 int
	perSec, p50, p99, mx rep
	missed, dups, cpu    rep
	expected             int
	failed               rep
	// From the nodes' log during the measurement (summed over repetitions).
	maxFailedBatch, failedBatches, contactWarnings, leaderLost int
}

type logEvents struct {
	maxFailedBatch, failedBatches, contactWarnings, leaderLost int
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

var claimsRe = regexp.MustCompile(`claims=(\d+)`)

// scanNodeLog reads the nodes' log from offset: claim batches that failed
// (and the largest), Raft "failed to contact" warnings, and lost quorum
// or leadership.
func scanNodeLog(path string, offset int64) logEvents {
	var ev logEvents
	f, err := os.Open(path)
	if err != nil {
		return ev
	}
	defer f.Close()
	if _, err := f.Seek(offset, 0); err != nil {
		return ev
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "claim failed"):
			ev.failedBatches++
			if m := claimsRe.FindStringSubmatch(line); m != nil {
				n, _ := strconv.Atoi(m[1])
				ev.maxFailedBatch = max(ev.maxFailedBatch, n)
			}
		case strings.Contains(line, "failed to contact"):
			ev.contactWarnings++
		case strings.Contains(line, "heartbeat timeout reached"), strings.Contains(line, "failed to contact quorum"):
			ev.leaderLost++
		}
	}
	return ev
}

func runS5(r *report) error {
	var errs []string
	rows := map[string]*scaleRow{}
	var order []string
	row := func(sys string, jobs int) *scaleRow {
		k := fmt.Sprint(sys, jobs)
		if rows[k] == nil {
			rows[k] = &scaleRow{sys: sys, jobs: jobs}
			order = append(order, k)
		}
		return rows[k]
	}
	reps := s5Repetitions(r.st)
	r.st.s5Reps = reps // what the report says it ran
	for i := 0; i < reps; i++ {
		dir := filepath.Join(r.tmp, fmt.Sprintf("s5-%d", i))
		nodes, err := startInterlock(dir, 3)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		for k, n := range r.st.s5Counts {
			logBefore := fileSize(filepath.Join(dir, "nodes.log"))
			// The last repetition's largest count is profiled.
			var prof *s5Profile
			if i == reps-1 && k == len(r.st.s5Counts)-1 {
				prof = &s5Profile{}
			}
			profPath := filepath.Join(r.tmp, "s5-cpu.prof")
			st, err := s5Interlock(nodes, n, r.st.s5Dur, prof, profPath)
			if prof != nil && err == nil {
				if prof.err == "" {
					if samples, perr := readTraces(profPath); perr != nil {
						prof.err = perr.Error()
					} else {
						prof.summarise(samples)
					}
				}
				r.s5prof = prof
			}
			if err != nil {
				errs = append(errs, fmt.Sprintf("%d jobs: %v", n, err))
				continue
			}
			x := row(sysInterlock, n)
			x.add(st)
			ev := scanNodeLog(filepath.Join(dir, "nodes.log"), logBefore)
			x.maxFailedBatch = max(x.maxFailedBatch, ev.maxFailedBatch)
			x.failedBatches += ev.failedBatches
			x.contactWarnings += ev.contactWarnings
			x.leaderLost += ev.leaderLost
		}
		stopInterlock(nodes)
	}
	// The references without coordination run at every count in the full
	// run, and at the smallest in the quick one (its aim is the one a
	// burst at the instant decides; the largest is CPU-bound throughout).
	for i, n := range r.st.s5Counts {
		if !r.st.s5LocalAll && i > 0 {
			continue
		}
		row(sysLocalTickers, n).add(s5Local(n, r.st.s5Dur))
		st, err := s5Unclustered(n, r.st.s5Dur)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%d jobs, no cluster: %v", n, err))
			continue
		}
		row(sysUnclustered, n).add(st)
	}
	for _, k := range order {
		r.s5 = append(r.s5, *rows[k])
	}
	var parts []string
	for _, k := range order {
		x := rows[k]
		if x.sys == sysInterlock {
			parts = append(parts, fmt.Sprintf("%d jobs: %s runs/s, p99 %s ms (worst repetition %s), missed %s (worst %s)", x.jobs, num(x.perSec.median()), num(x.p99.median()), num(x.p99.max()), num(x.missed.median()), num(x.missed.max())))
		}
	}
	progress("S5 scale, Interlock 3 nodes at 1 s (%s × %d): %s", r.st.s5Dur, reps, strings.Join(parts, "; "))
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

// s5Repetitions is how many times S5 runs: at least five in the full
// run, whose aim holds for every repetition, so the worst one counts and
// one bad repetition must not hide behind a median. The quick run takes
// two, to stay under five minutes (with three, and the references without
// coordination, it took 5m3s): its figures are indicative only.
func s5Repetitions(st settings) int {
	if st.mode == "full" {
		return max(st.s5Reps, 5)
	}
	return st.s5Reps
}

func (x *scaleRow) add(st scaleStats) {
	x.expected = st.expected
	x.perSec = append(x.perSec, st.perSec)
	x.p50 = append(x.p50, ms(st.p50))
	x.p99 = append(x.p99, ms(st.p99))
	x.mx = append(x.mx, ms(st.max))
	x.missed = append(x.missed, float64(st.missed))
	x.dups = append(x.dups, float64(st.dups))
	x.cpu = append(x.cpu, st.cpu)
	x.failed = append(x.failed, float64(st.failed))
}

// runs is the median number of runs counted.
func (x scaleRow) runs() float64 { return x.perSec.median() }
