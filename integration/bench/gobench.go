package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// The library's own lock benchmarks (cluster/lock_bench_test.go) time
// Interlock's locks against bare hashicorp/raft commits on the same
// three-node cluster, interleaved, which is the fairest peer for what a
// Raft commit costs on this disk. This step runs them with `go test` in the
// repository root and reports the aims against them.

// Lock aims from the lock issue: an uncontended Lock+Unlock p50 of at most
// 2 ms and at least 10,000 pairs per second over 64 names.
const (
	aimPairP50ms   = 2.0
	aimPairsPerSec = 10000.0
)

type goBench struct {
	store   string // the log store the benchmarks' nodes used
	command string
	// names keeps the benchmarks in output order; metrics holds, per
	// benchmark and unit, one value per -count repetition.
	names   []string
	metrics map[string]map[string]rep
}

func (g *goBench) value(name, unit string) rep { return g.metrics[name][unit] }

// aims returns the figures the lock aims are judged by, each with its peer:
// the uncontended pair p50 through the leader and two bare Raft commits in
// the same iterations, and pairs/s on 64 names and for bare Raft.
func (g *goBench) aims() (lead, floor, par, bare rep) {
	return g.value("LockUnlockUncontended/leader", "p50-ms"), g.value("LockUnlockUncontended/leader", "raft-pair-p50-ms"),
		g.value("LockUnlockParallel64/3nodes", "pairs/s"), g.value("LockUnlockParallel64/raft-apply-64", "pairs/s")
}

func runGoBench(r *report) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	count, benchtime := "1", "1s"
	if r.st.mode == "full" {
		count, benchtime = "5", "3s"
	}
	args := []string{"test", "-run", "^$", "-bench", "LockUnlock", "-benchtime", benchtime, "-count", count, "./cluster/"}
	// The same benchmarks once per log store, one after the other: the
	// benchmarks' clusters honour INTERLOCK_TEST_LOGSTORE.
	for _, store := range []string{"bolt", "wal"} {
		g := &goBench{store: store, command: "INTERLOCK_TEST_LOGSTORE=" + store + " go " + strings.Join(quoteArgs(args), " "), metrics: map[string]map[string]rep{}}
		progress("gobench: %s", g.command)
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "INTERLOCK_TEST_LOGSTORE="+store)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w\n%s", g.command, err, lastLines(out.String(), 20))
		}
		if err := g.parse(out.String()); err != nil {
			return fmt.Errorf("%s: %w", g.command, err)
		}
		if store == "bolt" {
			r.gobench = g
		} else {
			r.gobenchWAL = g
		}
	}
	return nil
}

// parse reads `go test -bench` lines: name, iterations, then value/unit
// pairs.
func (g *goBench) parse(out string) error {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndex(name, "-"); i > 0 {
			name = name[:i] // drop the GOMAXPROCS suffix
		}
		if g.metrics[name] == nil {
			g.metrics[name] = map[string]rep{}
			g.names = append(g.names, name)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			g.metrics[name][f[i+1]] = append(g.metrics[name][f[i+1]], v)
		}
	}
	if len(g.names) == 0 {
		return errors.New("no benchmark lines in the output")
	}
	return nil
}

func repoRoot() (string, error) {
	dir, err := filepath.Abs("../..")
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil || !strings.Contains(string(b), "module github.com/interlockraft/interlock\n") {
		return "", fmt.Errorf("run the bench from integration/bench (as make bench does): %s is not the repository root", dir)
	}
	return dir, nil
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "^$ ") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return out
}

func lastLines(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

func (r *report) writeGoBench(w writer) {
	g := r.gobench
	if g == nil {
		return
	}
	w("## Locks in the library's own Go benchmarks\n\n")
	w("`cluster/lock_bench_test.go`, run by this bench in the repository root with:\n\n```sh\n%s\n```\n\n", g.command)
	w("Three nodes in one process over loopback, each with its Raft log in bolt on disk (fsync on every commit). Each benchmark times its peer in the same run: bare hashicorp/raft Applies of a no-op entry on the same cluster, which is what a durable commit costs here before Interlock adds anything. In the uncontended benchmark every iteration runs two bare commits and then one Lock+Unlock, so the two see the same disk. Median (min–max) over %s repetition(s).\n\n", num(float64(len(g.value(g.names[0], "ns/op")))))
	w("| benchmark | pair p50 ms | pair p99 ms | Lock p50 ms | two bare commits p50 ms | pair ÷ two bare commits | pairs/s | commands per entry |\n|---|---|---|---|---|---|---|---|\n")
	for _, n := range g.names {
		w("| %s | %s | %s | %s | %s | %s | %s | %s |\n", n, cell(g.value(n, "p50-ms")), cell(g.value(n, "p99-ms")), cell(g.value(n, "lock-p50-ms")), cell(g.value(n, "raft-pair-p50-ms")), cell(g.value(n, "pair/raft-pair")), cell(g.value(n, "pairs/s")), cell(g.value(n, "cmds/entry")))
	}
	lead, floor, par, bare := g.aims()
	w("\nAgainst the aims (uncontended Lock+Unlock p50 ≤ %s ms, ≥ %s pairs/s on 64 names):\n\n", num(aimPairP50ms), num(aimPairsPerSec))
	w("- Uncontended through the leader: p50 %s ms, %s the aim. Two bare Raft commits took %s ms in the same iterations, so Interlock's pair costs %s that floor; on this disk the floor itself is %s the aim.\n",
		num(lead.median()), metOrNot(lead.median() <= aimPairP50ms), num(floor.median()), ratio(lead.median(), floor.median()), aboveOrBelow(floor.median(), aimPairP50ms))
	w("- 64 names over three nodes: %s pairs/s, %s the aim; %s the %s pairs/s of 64 goroutines committing bare entries (one per command, as an application using hashicorp/raft directly would).\n\n",
		num(par.median()), metOrNot(par.median() >= aimPairsPerSec), ratio(par.median(), bare.median()), num(bare.median()))
	w("Why the floor is where it is: hashicorp/raft writes an entry to the leader's log before it sends it, and a follower writes it before it answers, so one commit is two bolt transactions in a row, and bolt makes each durable with two fdatasyncs (pages, then meta page). Here all three nodes share one virtual disk (*Physical reference* has its fsync time; %s). A Lock+Unlock pair is two commits in a row. Group commit cannot shorten a lone caller's wait; what it does is put the commands of every caller in the cluster into one entry per round, so throughput grows with callers while fsyncs per second stay flat.\n\n", r.phys.parallelFsync())
}

func metOrNot(ok bool) string {
	if ok {
		return "**meeting**"
	}
	return "**missing**"
}

func aboveOrBelow(v, aim float64) string {
	if v > aim {
		return "above"
	}
	return "within"
}
