// Package integration runs Interlock nodes as real OS processes on
// 127.0.0.1 (real TCP and UDP, Raft logs on disk) and drives them with
// signals: kill -9, SIGSTOP/SIGCONT, SIGTERM, restarts with the same
// DataDir. Each process is the interlock-node command in cmd/, built once
// with -race by TestMain. Runs are recorded by the processes themselves in
// per-node runlog files, which the tests merge and analyse.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/interlockraft/interlock/cluster/clustertest"
)

// nodeBin is the interlock-node binary TestMain built.
var nodeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "interlock-integration-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: temp dir:", err)
		os.Exit(1)
	}
	nodeBin = filepath.Join(dir, "interlock-node")
	build := exec.Command("go", "build", "-race", "-o", nodeBin, "./cmd/interlock-node")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: go build -race ./cmd/interlock-node: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// ---------------------------------------------------------------------
// Waiting

// eventually polls cond every 20 ms until it holds, and fails the test with
// msg if timeout passes first.
func eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: "+msg, append([]any{timeout}, args...)...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lazy formats as its result when printed, so a message passed to
// eventually can show state from the last poll.
type lazy func() string

func (l lazy) String() string { return l() }

// ---------------------------------------------------------------------
// Ports

// freePorts returns n ports for nodes of this test binary: see
// clustertest.FreePorts.
func freePorts(t testing.TB, n int) []int { return clustertest.FreePorts(t, n) }

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// ---------------------------------------------------------------------
// Cluster of processes

// clusterOpts tunes a Cluster. The zero value is a cluster of n nodes named
// n0..n(n-1) with BootstrapExpect n, no jobs, logs at info.
type clusterOpts struct {
	// Prefix names the nodes Prefix0, Prefix1, ...; default "n".
	Prefix string
	// ClusterName is passed as -cluster-name; "" keeps the library default.
	ClusterName string
	// Expect is -expect; default the number of nodes.
	Expect int
	// MaxVoters is -max-voters; 0 keeps the library default.
	MaxVoters int
	// DeadServerTimeout is -dead-server-timeout; 0 keeps the library
	// default (30s), negative disables the dead-server cleanup.
	DeadServerTimeout time.Duration
	// Jobs is -jobs, such as "a:200ms,b:1s:50ms".
	Jobs string
	// LogLevel is -log-level; default "info" (the tests grep info lines
	// such as "bootstrapped cluster").
	LogLevel string
	// ExtraJoin is put in front of the other nodes' addresses in every
	// node's -join list.
	ExtraJoin []string
	// ReadyTimeout bounds waiting for a node's /status to answer ready.
	// Default 60s.
	ReadyTimeout time.Duration
	// BoltOnly keeps every node on bolt even when INTERLOCK_TEST_LOGSTORE
	// names another store: a binary of a release before Config.LogStore
	// knows no -log-store flag, and a newer one restarted on its DataDir
	// must find the bolt log it left.
	BoltOnly bool
}

// proc is one node: its fixed identity (name, ports, files) and its
// current process, if any.
type proc struct {
	name       string
	gossipPort int
	raftPort   int
	httpPort   int
	dataDir    string
	runlog     string
	logs       []string // stderr of each life, in order
	// join, if not nil, replaces the -join list Launch computes.
	join []string
	// bin, if set, is the binary Launch runs instead of nodeBin.
	bin string

	cmd     *exec.Cmd
	done    chan struct{} // closed when the current process has exited
	exitErr error         // set before done is closed
	paused  bool
}

func (p *proc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Cluster is a set of interlock-node processes, in the style of
// hashicorp/raft's MakeCluster. Methods are for the test goroutine only.
type Cluster struct {
	t     *testing.T
	dir   string
	opts  clusterOpts
	nodes []*proc
	http  *http.Client
}

// startCluster starts n nodes concurrently and waits until each answers
// ready on /status and all agree on one leader.
func startCluster(t *testing.T, n int, opts clusterOpts) *Cluster {
	t.Helper()
	c := newCluster(t, n, opts)
	c.StartAll()
	c.WaitLeader(30 * time.Second)
	return c
}

// newCluster allocates ports and directories for n nodes without starting
// any, and registers the cleanup that kills every process it starts.
func newCluster(t *testing.T, n int, opts clusterOpts) *Cluster {
	t.Helper()
	if opts.Prefix == "" {
		opts.Prefix = "n"
	}
	if opts.Expect == 0 {
		opts.Expect = n
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 60 * time.Second
	}
	// TempDir first: cleanups run last-in first-out, so the processes are
	// killed (below) before their directories are removed.
	dir := t.TempDir()
	c := &Cluster{
		t:    t,
		dir:  dir,
		opts: opts,
		http: &http.Client{
			Timeout:   2 * time.Second,
			Transport: &http.Transport{DisableKeepAlives: true},
		},
	}
	ports := freePorts(t, 3*n)
	for i := 0; i < n; i++ {
		name := opts.Prefix + strconv.Itoa(i)
		c.nodes = append(c.nodes, &proc{
			name:       name,
			gossipPort: ports[i],
			raftPort:   ports[n+i],
			httpPort:   ports[2*n+i],
			dataDir:    filepath.Join(dir, name, "data"),
			runlog:     filepath.Join(dir, name, "runs.jsonl"),
		})
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(c.cleanup)
	return c
}

// cleanup kills every process still running (by PID), waits for it, and
// on failure prints the tail of every node's stderr.
func (c *Cluster) cleanup() {
	for _, p := range c.nodes {
		if p.running() {
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				c.t.Errorf("%s (pid %d) did not exit 10s after SIGKILL", p.name, p.cmd.Process.Pid)
			}
		}
	}
	// A -race node keeps running after a data race and exits 66 only at
	// the end, which a killed node never reaches: look for the reports.
	for _, p := range c.nodes {
		for life, path := range p.logs {
			b, err := os.ReadFile(path)
			if err != nil {
				c.t.Errorf("read %s: %v", path, err)
				continue
			}
			for _, bad := range []string{"WARNING: DATA RACE", "panic: ", "fatal error: "} {
				if i := bytes.Index(b, []byte(bad)); i >= 0 {
					c.t.Errorf("%s life %d stderr has %q:\n%s", p.name, life+1, bad, b[i:min(len(b), i+4000)])
				}
			}
		}
	}
	if c.t.Failed() {
		for _, p := range c.nodes {
			for life, path := range p.logs {
				c.t.Logf("---- %s life %d stderr (%s), last 40 lines:\n%s", p.name, life+1, path, tail(path, 40))
			}
		}
		c.keepLogs()
	}
	c.http.CloseIdleConnections()
}

// keepLogsEnv names a directory that a failed test's node logs and
// runlogs are copied to, under the test's name, before the test's
// temporary directory is removed.
const keepLogsEnv = "INTERLOCK_KEEP_LOGS"

func (c *Cluster) keepLogs() {
	root := os.Getenv(keepLogsEnv)
	if root == "" {
		return
	}
	dst := filepath.Join(root, strings.ReplaceAll(c.t.Name(), "/", "_"), filepath.Base(c.dir))
	// With -count the same test's directories repeat their names: keep
	// every failure, not just the last.
	for i := 2; ; i++ {
		if _, err := os.Stat(dst); errors.Is(err, fs.ErrNotExist) {
			break
		}
		dst = filepath.Join(filepath.Dir(dst), fmt.Sprintf("%s.%d", filepath.Base(c.dir), i))
	}
	for _, p := range c.nodes {
		files := slices.Clone(p.logs)
		files = append(files, p.runlog)
		for _, src := range files {
			b, err := os.ReadFile(src)
			if err != nil {
				continue
			}
			to := filepath.Join(dst, p.name, filepath.Base(src))
			err = os.MkdirAll(filepath.Dir(to), 0o755)
			if err == nil {
				err = os.WriteFile(to, b, 0o644)
			}
			if err != nil {
				c.t.Logf("keep logs: %v", err)
				return
			}
		}
	}
	c.t.Logf("node logs and runlogs copied to %s", dst)
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Name returns node i's name.
func (c *Cluster) Name(i int) string { return c.nodes[i].name }

// Index returns the index of the node with the given name, or -1.
func (c *Cluster) Index(name string) int {
	for i, p := range c.nodes {
		if p.name == name {
			return i
		}
	}
	return -1
}

// GossipAddrs returns every node's gossip host:port.
func (c *Cluster) GossipAddrs() []string {
	var out []string
	for _, p := range c.nodes {
		out = append(out, addr(p.gossipPort))
	}
	return out
}

// Names returns all node names, sorted.
func (c *Cluster) Names() []string {
	var out []string
	for _, p := range c.nodes {
		out = append(out, p.name)
	}
	sort.Strings(out)
	return out
}

// Live returns the indexes of nodes whose process runs and is not paused.
func (c *Cluster) Live() []int {
	var out []int
	for i, p := range c.nodes {
		if p.running() && !p.paused {
			out = append(out, i)
		}
	}
	return out
}

// Launch starts node i's process and returns without waiting for it to be
// ready. A node that already runs is a test bug.
func (c *Cluster) Launch(i int) {
	c.t.Helper()
	p := c.nodes[i]
	if p.running() {
		c.t.Fatalf("start %s: already running (pid %d)", p.name, p.cmd.Process.Pid)
	}
	join := slices.Clone(c.opts.ExtraJoin)
	for j, q := range c.nodes {
		if j != i {
			join = append(join, addr(q.gossipPort))
		}
	}
	if p.join != nil {
		join = p.join
	}
	args := []string{
		"-name", p.name,
		"-bind", addr(p.gossipPort),
		"-raft", addr(p.raftPort),
		"-http", addr(p.httpPort),
		"-join", strings.Join(join, ","),
		"-data-dir", p.dataDir,
		"-expect", strconv.Itoa(c.opts.Expect),
		"-runlog", p.runlog,
		"-log-level", c.opts.LogLevel,
		"-start-timeout", c.opts.ReadyTimeout.String(),
	}
	if c.opts.ClusterName != "" {
		args = append(args, "-cluster-name", c.opts.ClusterName)
	}
	if c.opts.MaxVoters != 0 {
		args = append(args, "-max-voters", strconv.Itoa(c.opts.MaxVoters))
	}
	if c.opts.DeadServerTimeout != 0 {
		args = append(args, "-dead-server-timeout", c.opts.DeadServerTimeout.String())
	}
	if c.opts.Jobs != "" {
		args = append(args, "-jobs", c.opts.Jobs)
	}
	// INTERLOCK_TEST_LOGSTORE=wal runs the whole suite (and the chaos
	// soak) with raft-wal instead of bolt.
	if s := os.Getenv("INTERLOCK_TEST_LOGSTORE"); s != "" && !c.opts.BoltOnly {
		args = append(args, "-log-store", s)
	}
	logPath := filepath.Join(c.dir, p.name, fmt.Sprintf("stderr.life%d.log", len(p.logs)+1))
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	defer logFile.Close() // the child has its own copy
	bin := nodeBin
	if p.bin != "" {
		bin = p.bin
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// If the test binary dies without its cleanups, take the node with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", p.name, err)
	}
	p.logs = append(p.logs, logPath)
	p.cmd = cmd
	p.paused = false
	p.exitErr = nil
	done := make(chan struct{})
	p.done = done
	go func() {
		err := cmd.Wait()
		p.exitErr = err
		close(done)
	}()
}

// Start starts node i and waits until its /status answers ready.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	c.Launch(i)
	c.WaitReady(i)
}

// StartAll launches every node at once, then waits for each to be ready.
func (c *Cluster) StartAll() {
	c.t.Helper()
	for i := range c.nodes {
		c.Launch(i)
	}
	for i := range c.nodes {
		c.WaitReady(i)
	}
}

// Relocate gives the stopped node i new gossip and Raft ports, keeping its
// name, DataDir, runlog and HTTP port: the next Launch is the same replica
// at a new address, as a rescheduled container with a new IP would be.
// The other nodes keep the -join lists they were started with.
func (c *Cluster) Relocate(i int) {
	c.t.Helper()
	p := c.nodes[i]
	if p.running() {
		c.t.Fatalf("relocate %s: still running (pid %d)", p.name, p.cmd.Process.Pid)
	}
	ports := freePorts(c.t, 2)
	p.gossipPort, p.raftPort = ports[0], ports[1]
}

// SetJoin makes every later Launch of node i use addrs as its -join list
// instead of the other nodes' gossip addresses; nil restores the default.
func (c *Cluster) SetJoin(i int, addrs []string) { c.nodes[i].join = addrs }

// SetBinary makes every later Launch of node i run bin instead of the
// interlock-node TestMain built; "" restores it.
func (c *Cluster) SetBinary(i int, bin string) { c.nodes[i].bin = bin }

// RaftAddr returns node i's current Raft host:port.
func (c *Cluster) RaftAddr(i int) string { return addr(c.nodes[i].raftPort) }

// Restart stops node i if it runs (SIGKILL) and starts it again with the
// same name, ports and DataDir, waiting until it is ready.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.nodes[i].running() {
		c.Kill(i)
	}
	c.Start(i)
}

// WaitReady waits until node i answers ready on /status. It fails at once
// if the process exits.
func (c *Cluster) WaitReady(i int) {
	c.t.Helper()
	p := c.nodes[i]
	deadline := time.Now().Add(c.opts.ReadyTimeout + 5*time.Second)
	for {
		select {
		case <-p.done:
			c.t.Fatalf("%s exited before it was ready: %v; stderr:\n%s", p.name, p.exitErr, tail(p.logs[len(p.logs)-1], 20))
		default:
		}
		if st, err := c.Status(i); err == nil && st.Ready {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s not ready after %s", p.name, c.opts.ReadyTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signal sends sig to node i's process.
func (c *Cluster) signal(i int, sig syscall.Signal) {
	c.t.Helper()
	p := c.nodes[i]
	if !p.running() {
		c.t.Fatalf("signal %v to %s: not running", sig, p.name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// wait waits up to timeout for node i's process to exit and returns its
// exit code (-1 if killed by a signal).
func (c *Cluster) wait(i int, timeout time.Duration) int {
	c.t.Helper()
	p := c.nodes[i]
	select {
	case <-p.done:
	case <-time.After(timeout):
		c.t.Fatalf("%s (pid %d) did not exit within %s", p.name, p.cmd.Process.Pid, timeout)
	}
	p.paused = false
	return p.cmd.ProcessState.ExitCode()
}

// Kill sends SIGKILL to node i and waits for it to die.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	c.signal(i, syscall.SIGKILL)
	c.wait(i, 10*time.Second)
}

// KillAll sends SIGKILL to every running node at once, then waits for all.
func (c *Cluster) KillAll() {
	c.t.Helper()
	var running []int
	for i, p := range c.nodes {
		if p.running() {
			running = append(running, i)
		}
	}
	c.KillNodes(running...)
}

// KillNodes sends SIGKILL to each of the given nodes at once, then waits
// for all of them to die.
func (c *Cluster) KillNodes(idx ...int) {
	c.t.Helper()
	for _, i := range idx {
		c.signal(i, syscall.SIGKILL)
	}
	for _, i := range idx {
		c.wait(i, 10*time.Second)
	}
}

// Stop sends SIGTERM to node i, waits for it to exit and returns its exit
// code; the node leaves the cluster gracefully.
func (c *Cluster) Stop(i int) int {
	c.t.Helper()
	if c.nodes[i].paused {
		c.t.Fatalf("stop %s: it is paused; Resume it first", c.nodes[i].name)
	}
	c.signal(i, syscall.SIGTERM)
	return c.wait(i, 30*time.Second)
}

// Pause sends SIGSTOP to node i and waits until the kernel reports it
// stopped.
func (c *Cluster) Pause(i int) {
	c.t.Helper()
	c.signal(i, syscall.SIGSTOP)
	c.nodes[i].paused = true
	pid := c.nodes[i].cmd.Process.Pid
	eventually(c.t, 5*time.Second, func() bool { return procState(pid) == 'T' }, "%s (pid %d) not stopped after SIGSTOP", c.nodes[i].name, pid)
}

// Resume sends SIGCONT to node i.
func (c *Cluster) Resume(i int) {
	c.t.Helper()
	c.signal(i, syscall.SIGCONT)
	c.nodes[i].paused = false
}

// procState returns the state letter of /proc/pid/stat (R, S, T, ...).
func procState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ...; comm may contain spaces, so split at the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// Logs returns the stderr of each life of node i.
func (c *Cluster) Logs(i int) []string {
	c.t.Helper()
	var out []string
	for _, path := range c.nodes[i].logs {
		b, err := os.ReadFile(path)
		if err != nil {
			c.t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// ---------------------------------------------------------------------
// Status

type serverStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
}

type memberStatus struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Since  int64  `json:"since"` // Unix ns: when gossip first saw Status
}

// Status is a node's answer to GET /status.
type Status struct {
	Name         string         `json:"name"`
	Ready        bool           `json:"ready"`
	PID          int            `json:"pid"`
	Leader       string         `json:"leader"`
	IsLeader     bool           `json:"is_leader"`
	Servers      []serverStatus `json:"servers"`
	Members      []memberStatus `json:"members"`
	AppliedIndex uint64         `json:"applied_index"`
	Error        string         `json:"error"`
}

// ServerNames returns the names in the Raft configuration, sorted.
func (s Status) ServerNames() []string {
	var out []string
	for _, sv := range s.Servers {
		out = append(out, sv.Name)
	}
	sort.Strings(out)
	return out
}

// MemberNames returns the names gossip knows, sorted.
func (s Status) MemberNames() []string {
	var out []string
	for _, m := range s.Members {
		out = append(out, m.Name)
	}
	sort.Strings(out)
	return out
}

// Voters returns the names of the voters in the Raft configuration, sorted.
func (s Status) Voters() []string {
	var out []string
	for _, sv := range s.Servers {
		if sv.Voter {
			out = append(out, sv.Name)
		}
	}
	sort.Strings(out)
	return out
}

// NonVoters returns the names of the non-voters in the Raft configuration,
// sorted.
func (s Status) NonVoters() []string {
	var out []string
	for _, sv := range s.Servers {
		if !sv.Voter {
			out = append(out, sv.Name)
		}
	}
	sort.Strings(out)
	return out
}

// Server returns the configuration entry of name, if any.
func (s Status) Server(name string) (serverStatus, bool) {
	for _, sv := range s.Servers {
		if sv.Name == name {
			return sv, true
		}
	}
	return serverStatus{}, false
}

// Member returns gossip's record of name, if any.
func (s Status) Member(name string) (memberStatus, bool) {
	for _, m := range s.Members {
		if m.Name == name {
			return m, true
		}
	}
	return memberStatus{}, false
}

// MemberStatus returns the gossip status of a member, or "".
func (s Status) MemberStatus(name string) string {
	for _, m := range s.Members {
		if m.Name == name {
			return m.Status
		}
	}
	return ""
}

// Status fetches node i's /status. A node that is starting answers with
// Ready false; an error means no answer (not running, paused, timeout).
func (c *Cluster) Status(i int) (Status, error) {
	var st Status
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr(c.nodes[i].httpPort)+"/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("decode /status of %s (HTTP %d): %w", c.nodes[i].name, resp.StatusCode, err)
	}
	if st.Name != c.nodes[i].name {
		return st, fmt.Errorf("port of %s answered as %q", c.nodes[i].name, st.Name)
	}
	return st, nil
}

// LockUnlock takes and releases the named lock on node i through its /lock
// endpoint, waiting at most timeout, and returns the fencing token.
func (c *Cluster) LockUnlock(i int, name string, timeout time.Duration) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	u := "http://" + addr(c.nodes[i].httpPort) + "/lock?name=" + url.QueryEscape(name) + "&ttl=10s"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return 0, err
	}
	// Not c.http: its 2 s timeout is for /status, and a lock may wait out
	// a failover.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("lock on %s: HTTP %d: %s", c.nodes[i].name, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var token uint64
	if _, err := fmt.Sscan(string(body), &token); err != nil {
		return 0, fmt.Errorf("lock on %s: token %q: %w", c.nodes[i].name, body, err)
	}
	return token, nil
}

// MustStatus is Status that fails the test on error.
func (c *Cluster) MustStatus(i int) Status {
	c.t.Helper()
	st, err := c.Status(i)
	if err != nil {
		c.t.Fatalf("status of %s: %v", c.nodes[i].name, err)
	}
	if !st.Ready {
		c.t.Fatalf("status of %s: not ready: %+v", c.nodes[i].name, st)
	}
	return st
}

// agreedLeader returns the index of the leader every live node names, if
// they all answer, all name the same node, and that node is live and says
// it leads; otherwise -1.
func (c *Cluster) agreedLeader() int {
	idx, _ := c.leaderView()
	return idx
}

// leaderView is agreedLeader that also describes what each live node said.
func (c *Cluster) leaderView() (int, string) {
	live := c.Live()
	if len(live) == 0 {
		return -1, "no live node"
	}
	var views []string
	agreed := true
	leader := ""
	statuses := map[int]Status{}
	for _, i := range live {
		st, err := c.Status(i)
		switch {
		case err != nil:
			views = append(views, fmt.Sprintf("%s: %v", c.nodes[i].name, err))
			agreed = false
			continue
		case !st.Ready:
			views = append(views, c.nodes[i].name+": not ready")
			agreed = false
			continue
		}
		views = append(views, fmt.Sprintf("%s: leader %q is_leader %v servers %v", st.Name, st.Leader, st.IsLeader, st.ServerNames()))
		if st.Leader == "" || (leader != "" && st.Leader != leader) {
			agreed = false
		}
		leader = st.Leader
		statuses[i] = st
	}
	view := strings.Join(views, "; ")
	if !agreed {
		return -1, view
	}
	idx := c.Index(leader)
	if st, ok := statuses[idx]; !ok || !st.IsLeader {
		return -1, view
	}
	return idx, view
}

// WaitLeader waits until all live (running, not paused) nodes agree on one
// live leader that says it leads, and returns its index.
func (c *Cluster) WaitLeader(timeout time.Duration) int {
	c.t.Helper()
	idx := -1
	view := ""
	eventually(c.t, timeout, func() bool {
		idx, view = c.leaderView()
		return idx >= 0
	}, "live nodes of %v never agreed on a live leader; last view: %s", c.Names(), lazy(func() string { return view }))
	return idx
}

// ---------------------------------------------------------------------
// Runs

// Run is one line of a node's runlog.
type Run struct {
	Job   string `json:"job"`
	Tick  int64  `json:"tick"`
	Node  string `json:"node"`
	Token uint64 `json:"token"`
	At    int64  `json:"at"`    // scheduled instant, Unix ns
	Start int64  `json:"start"` // when the run began, Unix ns
}

func (r Run) String() string {
	return fmt.Sprintf("%s#%d on %s token %d (sched %s, start %s)", r.Job, r.Tick, r.Node, r.Token,
		time.Unix(0, r.At).Format("15:04:05.000"), time.Unix(0, r.Start).Format("15:04:05.000"))
}

// StartTime returns when the run began.
func (r Run) StartTime() time.Time { return time.Unix(0, r.Start) }

// ReadRuns merges every node's runlog, sorted by job, tick and start. Any
// line that is not whole JSON (a torn write) fails the test.
func (c *Cluster) ReadRuns() []Run {
	c.t.Helper()
	var runs []Run
	for _, p := range c.nodes {
		b, err := os.ReadFile(p.runlog)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			c.t.Fatal(err)
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			cut := bytes.LastIndexByte(b, '\n') + 1
			// A live node may be in the middle of its write (the kernel
			// can expose a write that crosses a page boundary in two
			// steps); a dead one left a torn line.
			if !p.running() {
				c.t.Errorf("runlog of %s (not running) ends in a torn line: %q", p.name, b[cut:])
			}
			b = b[:cut]
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for line := 1; sc.Scan(); line++ {
			var r Run
			dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&r); err != nil {
				c.t.Errorf("runlog of %s line %d is not a run: %q: %v", p.name, line, sc.Text(), err)
				continue
			}
			if r.Node != p.name {
				c.t.Errorf("runlog of %s line %d names node %q", p.name, line, r.Node)
			}
			runs = append(runs, r)
		}
	}
	sortRuns(runs)
	return runs
}

func sortRuns(runs []Run) {
	sort.SliceStable(runs, func(i, j int) bool {
		a, b := runs[i], runs[j]
		if a.Job != b.Job {
			return a.Job < b.Job
		}
		if a.Tick != b.Tick {
			return a.Tick < b.Tick
		}
		return a.Start < b.Start
	})
}

// WaitRuns waits until at least n runs satisfy match, and returns all runs.
func (c *Cluster) WaitRuns(timeout time.Duration, n int, match func(Run) bool, what string) []Run {
	c.t.Helper()
	var runs []Run
	eventually(c.t, timeout, func() bool {
		runs = c.ReadRuns()
		return countRuns(runs, match) >= n
	}, "fewer than %d runs %s (have %v)", n, what, lazy(func() string { return strconv.Itoa(countRuns(runs, match)) }))
	return runs
}

func countRuns(runs []Run, match func(Run) bool) int {
	n := 0
	for _, r := range runs {
		if match == nil || match(r) {
			n++
		}
	}
	return n
}

// ---------------------------------------------------------------------
// Analysis

type jobTick struct {
	Job  string
	Tick int64
}

// duplicates returns every (job, tick) recorded more than once, with all
// its runs.
func duplicates(runs []Run) map[jobTick][]Run {
	by := map[jobTick][]Run{}
	for _, r := range runs {
		k := jobTick{r.Job, r.Tick}
		by[k] = append(by[k], r)
	}
	out := map[jobTick][]Run{}
	for k, rs := range by {
		if len(rs) > 1 {
			out[k] = rs
		}
	}
	return out
}

// missedTicks returns the ticks of job in [from, to] that have no run.
func missedTicks(runs []Run, job string, from, to int64) []int64 {
	have := map[int64]bool{}
	for _, r := range runs {
		if r.Job == job {
			have[r.Tick] = true
		}
	}
	var out []int64
	for k := from; k <= to; k++ {
		if !have[k] {
			out = append(out, k)
		}
	}
	return out
}

// tokenViolations returns a description of every place where a job's
// fencing tokens break what the cluster's grants allow (see
// clustertest.TokenOrderViolations): in tick order they increase, but for
// a tick granted late, after at most a few later ones.
func tokenViolations(runs []Run) []string {
	rs := make([]clustertest.TokenRun, len(runs))
	for i, r := range runs {
		rs[i] = clustertest.TokenRun{Job: r.Job, At: r.Tick, Token: r.Token, Name: r.String()}
	}
	return clustertest.TokenOrderViolations(rs)
}

// checkRuns asserts the properties that must hold for any set of runs:
// no (job, tick) recorded twice, and tokens per job in the order grants
// allow (tokenViolations).
func checkRuns(t testing.TB, runs []Run) {
	t.Helper()
	dups := duplicates(runs)
	keys := make([]jobTick, 0, len(dups))
	for k := range dups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].Job < keys[j].Job || keys[i].Job == keys[j].Job && keys[i].Tick < keys[j].Tick
	})
	for _, k := range keys {
		t.Errorf("duplicate: %s tick %d ran %d times: %v", k.Job, k.Tick, len(dups[k]), dups[k])
	}
	for _, v := range tokenViolations(runs) {
		t.Errorf("fencing tokens out of order: %s", v)
	}
}

// tickOf returns the index of the latest tick at or before t.
func tickOf(interval time.Duration, t time.Time) int64 {
	return t.UnixNano() / int64(interval)
}

// maxTick returns the highest tick of job among runs, or -1.
func maxTick(runs []Run, job string) int64 {
	m := int64(-1)
	for _, r := range runs {
		if r.Job == job && r.Tick > m {
			m = r.Tick
		}
	}
	return m
}

// perNode counts runs per node.
func perNode(runs []Run) map[string]int {
	out := map[string]int{}
	for _, r := range runs {
		out[r.Node]++
	}
	return out
}
