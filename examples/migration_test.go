package examples_test

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The programs under examples/gointerlock are gointerlock v1.1.1's example
// programs, ported by changing the import and replacing the Redis fields
// with Cluster: node. TestGointerlockMigration builds them and checks that
// they behave as gointerlock's do: no call earlier than one Interval after
// Run, then one every Interval; with a cluster, each tick once across the
// replicas. Each program runs 10 seconds, as the originals do.

// migrationInterval is the Interval of the ported basic and Redis programs.
const migrationInterval = 2 * time.Second

// call is one " - called" line: the wall clock and the time since the
// process started, both printed by time.Time's String.
type call struct {
	wall time.Time
	mono time.Duration
}

// parseCall parses a line printed by fmt.Println(time.Now(), " - called").
func parseCall(line string) (call, bool) {
	i := strings.Index(line, " m=+")
	if i < 0 || !strings.HasSuffix(line, " - called") {
		return call{}, false
	}
	wall, err := time.Parse("2006-01-02 15:04:05.999999999 -0700 MST", line[:i])
	if err != nil {
		return call{}, false
	}
	secs, err := strconv.ParseFloat(strings.Fields(line[i+len(" m=+"):])[0], 64)
	if err != nil {
		return call{}, false
	}
	return call{wall: wall, mono: time.Duration(secs * float64(time.Second))}, true
}

// runProgram runs a built program to its end and returns its calls.
func runProgram(t *testing.T, path string, env []string) []call {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = append(cmd.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(path), err, out, stderr.String())
	}
	var calls []call
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if c, ok := parseCall(sc.Text()); ok {
			calls = append(calls, c)
		}
	}
	return calls
}

func buildMigration(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "./gointerlock/...")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/gointerlock/...: %v\n%s", err, out)
	}
	return bin
}

func TestGointerlockMigration(t *testing.T) {
	bin := buildMigration(t)

	t.Run("basic-local", func(t *testing.T) {
		t.Parallel()
		calls := runProgram(t, filepath.Join(bin, "basic-local"), nil)
		// gointerlock: calls at 2, 4, 6 and 8 s after start (10 s races
		// with the exit).
		if len(calls) < 4 || len(calls) > 5 {
			t.Fatalf("%d calls in 10s at a 2s Interval; want 4 or 5: %+v", len(calls), calls)
		}
		// The process clock starts before main, so the first call is at
		// least one Interval after it, and little more.
		if first := calls[0].mono; first < migrationInterval || first > migrationInterval+500*time.Millisecond {
			t.Errorf("first call %s after the process started; want one Interval (%s) after Run", first, migrationInterval)
		}
		for i := 1; i < len(calls); i++ {
			if d := calls[i].mono - calls[i-1].mono; d < migrationInterval-50*time.Millisecond || d > migrationInterval+200*time.Millisecond {
				t.Errorf("calls %d and %d are %s apart; want one Interval (%s)", i-1, i, d, migrationInterval)
			}
		}
	})

	t.Run("redis as a 3-node cluster", func(t *testing.T) {
		t.Parallel()
		const n = 3
		ports := freePorts(t, 2*n)
		gossip := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
		var (
			wg  sync.WaitGroup
			mu  sync.Mutex
			all []call
			per = make([][]call, n)
		)
		for i := range n {
			var join []string
			for j := range n {
				if j != i {
					join = append(join, gossip(j))
				}
			}
			env := []string{
				"INTERLOCK_NODE_NAME=node" + strconv.Itoa(i),
				"INTERLOCK_BIND_ADDR=" + gossip(i),
				"INTERLOCK_RAFT_ADDR=127.0.0.1:" + strconv.Itoa(ports[n+i]),
				"INTERLOCK_JOIN=" + strings.Join(join, ","),
				"INTERLOCK_BOOTSTRAP_EXPECT=" + strconv.Itoa(n),
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				calls := runProgram(t, filepath.Join(bin, "redis"), env)
				mu.Lock()
				defer mu.Unlock()
				per[i] = calls
				all = append(all, calls...)
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		for i, calls := range per {
			if len(calls) > 0 && calls[0].mono < migrationInterval {
				t.Errorf("node%d's first call came %s after its process started; want at least one Interval (%s)", i, calls[0].mono, migrationInterval)
			}
		}
		// A run for tick k starts within its StartDeadline (one Interval)
		// after k×Interval, so the wall clock names the tick.
		byTick := map[int64]int{}
		for _, c := range all {
			byTick[c.wall.UnixNano()/int64(migrationInterval)]++
		}
		ticks := slices.Sorted(func(yield func(int64) bool) {
			for k := range byTick {
				if !yield(k) {
					return
				}
			}
		})
		if len(ticks) < 3 {
			t.Fatalf("%d ticks ran across 3 replicas in 10s at a 2s Interval; want at least 3 (calls per node: %d, %d, %d)", len(ticks), len(per[0]), len(per[1]), len(per[2]))
		}
		for _, k := range ticks {
			if byTick[k] != 1 {
				t.Errorf("tick %d ran %d times across the replicas; want once", k, byTick[k])
			}
		}
		for k := ticks[0]; k <= ticks[len(ticks)-1]; k++ {
			if byTick[k] == 0 {
				t.Errorf("tick %d ran nowhere, between ticks that ran", k)
			}
		}
		t.Logf("ticks %v; calls per node %d, %d, %d", ticks, len(per[0]), len(per[1]), len(per[2]))
	})

	t.Run("readme-snippets", func(t *testing.T) {
		t.Parallel()
		// Both snippets run for the program's five seconds: each at 2s
		// and 4s after Run (the cluster one on the epoch's ticks, the
		// first at least 2s after Run).
		calls := runProgram(t, filepath.Join(bin, "readme-snippets"), nil)
		if len(calls) < 3 || len(calls) > 5 {
			t.Errorf("%d calls from two 2s jobs in 5s; want 3 to 5: %+v", len(calls), calls)
		}
		for _, c := range calls {
			if c.mono < migrationInterval {
				t.Errorf("a call came %s after the process started; want at least one Interval (%s)", c.mono, migrationInterval)
			}
		}
	})

	t.Run("application-cache", func(t *testing.T) {
		t.Parallel()
		testMigratedCache(t, filepath.Join(bin, "application-cache"))
	})
}

// testMigratedCache runs the ported application cache, which listens on
// :8080 as the original does, in a network namespace of its own so it
// never meets another :8080, and reads its page every 200ms for 12s: the
// value must change one Interval (5s) after start, then every Interval.
func testMigratedCache(t *testing.T, path string) {
	for _, tool := range []string{"unshare", "ip", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s to run the program on its fixed port :8080 in a network namespace: %v", tool, err)
		}
	}
	if out, err := exec.Command("unshare", "-rn", "true").CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace to run the program on its fixed port :8080: %v %s", err, out)
	}
	const interval = 5 * time.Second
	script := `ip link set lo up || exit 1
"$0" & pid=$!
i=0
while [ $i -lt 60 ]; do
	v=$(curl -s http://127.0.0.1:8080/) && echo "page: $v"
	sleep 0.2
	i=$((i+1))
done
kill $pid`
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "unshare", "-rn", "sh", "-c", script, path).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var values []time.Time
	for line := range strings.Lines(string(out)) {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "page: Last result at: ")
		if !ok {
			continue
		}
		if i := strings.Index(v, " m=+"); i >= 0 {
			v = v[:i]
		}
		at, err := time.Parse("2006-01-02 15:04:05.999999999 -0700 MST", v)
		if err != nil {
			t.Fatalf("page %q: %v", line, err)
		}
		if len(values) == 0 || !at.Equal(values[len(values)-1]) {
			values = append(values, at)
		}
	}
	if len(values) < 3 {
		t.Fatalf("the page showed %d values in 12s; want the start value and at least two refreshes 5s apart\n%s", len(values), out)
	}
	for i := 1; i < len(values); i++ {
		if d := values[i].Sub(values[i-1]); d < interval-50*time.Millisecond || d > interval+300*time.Millisecond {
			t.Errorf("value %d came %s after value %d; want one Interval (%s), the first counted from start", i, d, i-1, interval)
		}
	}
	t.Logf("values %v", values)
}
