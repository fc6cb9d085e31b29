// Package examples_test builds and runs every example under examples/, as a
// new user would, and checks that each one ends as its README line says:
// on its own with exit status 0, or, for a server, when interrupted.
package examples_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// exampleRun is one way of running an example.
type exampleRun struct {
	name string
	// args returns the flags; it may pick free ports.
	args func(t *testing.T) []string
	// env, if set, returns KEY=value pairs added to the environment, for an
	// example configured through it; it may pick free ports.
	env func(t *testing.T) []string
	// serve marks an example that runs until interrupted: the test waits
	// for its "serving ... on http://addr/" line, GETs addr until it
	// answers 200, then sends SIGINT.
	serve bool
	// last must match the last line of standard output.
	last *regexp.Regexp
}

// runs lists how each directory under examples/ is run. An example missing
// here fails TestExamples, so none escapes it.
var runs = map[string][]exampleRun{
	"basic": {{
		name: "-for",
		args: fixed("-for", "2s", "-interval", "200ms"),
		last: regexp.MustCompile(`^stopped$`),
	}},
	"cache": {{
		name:  "local, until SIGINT",
		args:  fixed("-addr", "127.0.0.1:0", "-interval", "200ms"),
		serve: true,
		last:  regexp.MustCompile(`^scheduler stopped: runs=[1-9]\d* skipped=\d+ errors=0 claim-failures=0$`),
	}, {
		name: "one-node cluster, -for",
		args: func(t *testing.T) []string {
			p := freePorts(t, 2)
			return []string{"-cluster", "-for", "4s", "-interval", "200ms", "-addr", "127.0.0.1:0",
				"-bind-addr", "127.0.0.1:" + strconv.Itoa(p[0]), "-raft-addr", "127.0.0.1:" + strconv.Itoa(p[1])}
		},
		last: regexp.MustCompile(`^scheduler stopped: runs=[1-9]\d* skipped=\d+ errors=0 claim-failures=0$`),
	}},
	"lock": {{
		name: "default",
		args: fixed(),
		last: regexp.MustCompile(`^accepted=\d+ rejected_stale=1$`),
	}},
	"swarm": {{
		name: "one node, INTERLOCK_RUN_FOR",
		args: fixed(),
		env: func(t *testing.T) []string {
			p := freePorts(t, 2)
			return []string{"INTERLOCK_BOOTSTRAP_EXPECT=1", "INTERLOCK_RUN_FOR=3s",
				"INTERLOCK_JOBS=fast:200ms,slow:500ms", "INTERLOCK_LOCK_EVERY=300ms",
				"INTERLOCK_BIND_ADDR=127.0.0.1:" + strconv.Itoa(p[0]),
				"INTERLOCK_RAFT_ADDR=127.0.0.1:" + strconv.Itoa(p[1])}
		},
		last: regexp.MustCompile(`^stopped node=\S+ runs=[1-9]\d* locks=[1-9]\d*$`),
	}},
	"three-node": {{
		name: "-for",
		args: fixed("-for", "3s", "-interval", "250ms"),
		last: regexp.MustCompile(`^ticks=[1-9]\d* runs=[1-9]\d* duplicates=0 missed=0$`),
	}, {
		name: "-dev-tls",
		args: fixed("-for", "3s", "-interval", "250ms", "-dev-tls"),
		last: regexp.MustCompile(`^ticks=[1-9]\d* runs=[1-9]\d* duplicates=0 missed=0$`),
	}},
}

// runTimeout bounds one run; an example that hangs fails instead.
const runTimeout = 2 * time.Minute

func fixed(args ...string) func(*testing.T) []string {
	return func(*testing.T) []string { return args }
}

// TestExamples builds every example found by listing examples/ and runs it
// in each way listed in runs, checking its exit status and last line.
func TestExamples(t *testing.T) {
	names := exampleDirs(t)
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if _, ok := runs[name]; !ok {
			t.Errorf("examples/%s has no entry in runs in examples_test.go; add how to run it", name)
		}
		if !strings.Contains(string(readme), "`examples/"+name+"`") {
			t.Errorf("examples/%s has no line in README.md's Examples table", name)
		}
	}
	for name := range runs {
		if _, err := os.Stat(name); err != nil {
			t.Errorf("runs lists %s, which is not a directory under examples/", name)
		}
	}
	if t.Failed() {
		return
	}

	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "./...")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/...: %v\n%s", err, out)
	}
	for _, name := range names {
		for _, r := range runs[name] {
			t.Run(name+"/"+r.name, func(t *testing.T) {
				runExample(t, filepath.Join(bin, name), r)
			})
		}
	}
}

// exampleDirs lists the directories under examples/ that hold Go files.
func exampleDirs(t *testing.T) []string {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if files, _ := filepath.Glob(filepath.Join(e.Name(), "*.go")); len(files) > 0 {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		t.Fatal("found no examples")
	}
	return names
}

var servingLine = regexp.MustCompile(`serving .* on (http://\S+/)`)

func runExample(t *testing.T, path string, r exampleRun) {
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, r.args(t)...)
	cmd.WaitDelay = 5 * time.Second
	if r.env != nil {
		cmd.Env = append(os.Environ(), r.env(t)...)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	served := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case served <- m[1]:
				default:
				}
			}
		}
	}()
	if r.serve {
		select {
		case url := <-served:
			checkServes(t, ctx, url)
		case <-scanned:
			t.Fatalf("exited before serving; stderr:\n%s", stderr.String())
		case <-ctx.Done():
		}
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatalf("SIGINT: %v", err)
		}
	}
	<-scanned
	err = cmd.Wait()
	out := strings.Join(lines, "\n")
	if ctx.Err() != nil {
		t.Fatalf("did not finish within %s\nstdout:\n%s\nstderr:\n%s", runTimeout, out, stderr.String())
	}
	if err != nil {
		t.Fatalf("exit: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	last := ""
	if len(lines) > 0 {
		last = lines[len(lines)-1]
	}
	if !r.last.MatchString(last) {
		t.Fatalf("last line %q does not match %s\nstdout:\n%s\nstderr:\n%s", last, r.last, out, stderr.String())
	}
}

// checkServes GETs url until it answers 200.
func checkServes(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never answered 200 (last: %v)", url, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// freePorts returns n ports that were free on 127.0.0.1 for both TCP and
// UDP (gossip needs both on one port).
func freePorts(t *testing.T, n int) []int {
	var ports []int
	var held []func()
	defer func() {
		for _, release := range held {
			release()
		}
	}()
	for len(ports) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			ln.Close()
			continue
		}
		held = append(held, func() { ln.Close(); pc.Close() })
		ports = append(ports, p)
	}
	return ports
}

// lockedBuffer collects a child's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
