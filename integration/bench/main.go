// Command bench measures Interlock side by side with gointerlock + Redis, a
// plain Redis lock and embedded etcd on this machine, and writes
// docs/benchmarks.md with a chart.
//
//	go run . -mode=quick -out ../../docs/benchmarks.md   # under 5 minutes
//	go run . -mode=full  -out ../../docs/benchmarks.md
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"
)

// quietRedisLogger drops go-redis's own log lines (dial failures while a
// failover scenario has Redis down are expected).
type quietRedisLogger struct{}

func (quietRedisLogger) Printf(context.Context, string, ...interface{}) {}

var (
	fMode = flag.String("mode", "quick", "quick or full")
	fOut  = flag.String("out", "", "markdown report to write; the chart goes next to it (default ../../docs/benchmarks.md, or, with -only, interlock-bench-partial.md in the temp directory, so a partial run never replaces the full report)")
	fRole = flag.String("role", "", "internal: run as a child replica")
	fName = flag.String("name", "", "internal: child name")
	fKeep = flag.Bool("keep", false, "keep the temporary directory (logs, data) for inspection")
	fS5   = flag.String("s5-jobs", "", "override the S5 job counts, e.g. 50000")
	fOnly = flag.String("only", "", "comma-separated scenarios to run (phys,s1,s2,gobench,s3,s4,s5,recovery); empty runs all")

	fS3Rows     = flag.String("s3-rows", "", "comma-separated S3 rows to run (il-kill, etcd-part, ilk, ilk-quorum, rl, ...); empty runs all of the mode's")
	fRecoveryMB = flag.Int("recovery-mb", 0, "log size in MiB for the log-store recovery step; 0 means 1024 in full mode and skipping it in quick mode")
)

// settings sizes a run.
type settings struct {
	mode                 string
	physN, physReps      int
	s1Dur                time.Duration
	s1Reps               int
	lockDur              time.Duration
	lockReps, contenders int
	s3Reps               int
	s3Watch              time.Duration
	s4Settle, s4Window   time.Duration
	s4Reps               int
	s5Dur                time.Duration
	s5Reps               int
	s5Counts             []int
	s5LocalAll           bool // run the no-coordination references at every count, not just the smallest
	redisFsyncAlways     bool
}

func settingsFor(mode string) settings {
	if mode == "full" {
		return settings{mode: "full", physN: 5000, physReps: 5, s1Dur: 60 * time.Second, s1Reps: 3,
			lockDur: 3 * time.Second, lockReps: 3, contenders: 8, s3Reps: 3, s3Watch: 8 * time.Second,
			s4Settle: 3 * time.Second, s4Window: 10 * time.Second, s4Reps: 2, s5Dur: 20 * time.Second, s5Reps: 5,
			s5Counts: []int{1000, 10000, 50000}, s5LocalAll: true, redisFsyncAlways: true}
	}
	return settings{mode: "quick", physN: 1000, physReps: 3, s1Dur: 5 * time.Second, s1Reps: 1,
		lockDur: time.Second, lockReps: 1, contenders: 8, s3Reps: 1, s3Watch: 3 * time.Second,
		s4Settle: 2 * time.Second, s4Window: 3 * time.Second, s4Reps: 1, s5Dur: 3 * time.Second, s5Reps: 2,
		s5Counts: []int{10000, 50000}, redisFsyncAlways: true}
}

var benchStart = time.Now()

func progress(format string, args ...any) {
	fmt.Printf("[bench %6.1fs] %s\n", time.Since(benchStart).Seconds(), fmt.Sprintf(format, args...))
}

func main() {
	flag.Parse()
	if *fRole != "" {
		runRole(*fRole, *fName)
		return
	}
	redis.SetLogger(quietRedisLogger{})
	if err := orchestrate(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func orchestrate() error {
	st := settingsFor(*fMode)
	if *fMode != "quick" && *fMode != "full" {
		return fmt.Errorf("-mode %q: use quick or full", *fMode)
	}
	tmp, err := os.MkdirTemp("", "interlock-bench-")
	if err != nil {
		return err
	}
	if *fKeep {
		defer progress("kept %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if *fS5 != "" {
		st.s5Counts = nil
		for _, p := range splitComma(*fS5) {
			var n int
			fmt.Sscan(p, &n)
			st.s5Counts = append(st.s5Counts, n)
		}
	}
	if err := ensureRedis(); err != nil {
		return err
	}
	rep := &report{st: st, started: time.Now(), tmp: tmp}
	rep.machine = describeMachine(tmp)
	progress("mode=%s, temp dir %s, %s", st.mode, tmp, rep.machine.short())
	only := parseOnly(*fOnly)
	steps := []struct {
		name string
		f    func(*report) error
	}{
		{"phys", runPhys}, {"s1", runS1}, {"s2", runS2}, {"gobench", runGoBench}, {"s3", runS3}, {"s4", runS4}, {"s5", runS5}, {"recovery", runRecovery},
	}
	if only["idleprof"] {
		steps = append(steps, struct {
			name string
			f    func(*report) error
		}{"idleprof", runIdleProf})
	}
	for _, s := range steps {
		if only != nil && !only[s.name] {
			continue
		}
		if err := s.f(rep); err != nil {
			progress("%s FAILED: %v", s.name, err)
			rep.failures = append(rep.failures, fmt.Sprintf("%s: %v", s.name, err))
		}
	}
	rep.finished = time.Now()
	rep.machine.loadAfter = loadAvg()
	path := *fOut
	switch {
	case path != "":
	case only != nil:
		path = filepath.Join(os.TempDir(), "interlock-bench-partial.md")
	default:
		path = "../../docs/benchmarks.md"
	}
	out, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if err := rep.write(out); err != nil {
		return err
	}
	progress("wrote %s in %.0fs", out, time.Since(benchStart).Seconds())
	return nil
}

func parseOnly(s string) map[string]bool {
	if s == "" {
		return nil
	}
	m := map[string]bool{}
	for _, p := range splitComma(s) {
		m[p] = true
	}
	return m
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}
