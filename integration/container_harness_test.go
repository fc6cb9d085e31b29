package integration

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// This file runs the example service (examples/swarm) as Docker containers:
// one image built FROM scratch around a static binary built on the host,
// replicas as plain containers with fixed names and IPs on a user bridge
// network (Docker's DNS resolves each name), each with its own volume at
// /data. Runs are read from each container's log, JSON lines written by
// the example; each replica's view of the cluster from its GET /status.

// ctrInterval is the fast job's interval; ctrJob its name.
const (
	ctrJob      = "beat"
	ctrInterval = 250 * time.Millisecond
)

// dockerCluster is a set of replicas and everything the test made for
// them, all labelled with the cluster's label and removed by Cleanup.
type dockerCluster struct {
	t       *testing.T // the test or subtest the helpers fail (see use)
	root    *testing.T // the test the log readers report to
	id      string
	label   string
	image   string
	network string
	prefix  string // the three octets of the network's /24, such as "10.231.7"

	mu       sync.Mutex
	runs     []Run
	seen     map[string]bool // raw log lines already parsed
	lines    map[string][]string
	ips      map[string]string // replica name -> current IP
	followMu sync.Mutex
	follows  []*follower
}

// dockerAvailable reports whether a Docker engine answers, and if not why.
func dockerAvailable() (bool, string) {
	if _, err := exec.LookPath("docker"); err != nil {
		return false, "the docker command is not installed"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err != nil {
		return false, fmt.Sprintf("docker version: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return true, ""
}

// docker runs the docker command and returns its trimmed combined output.
func docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return s, fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, s)
	}
	return s, nil
}

func (c *dockerCluster) must(args ...string) string {
	c.t.Helper()
	out, err := docker(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// newDockerCluster builds the image and creates the network; it starts no
// replica. Everything it and later calls create is removed when the test
// ends, also when it fails.
func newDockerCluster(t *testing.T) *dockerCluster {
	if ok, why := dockerAvailable(); !ok {
		t.Skipf("no Docker engine answers, so the container fault tests cannot run: %s", why)
	}
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(b)
	c := &dockerCluster{
		t:      t,
		root:   t,
		id:     id,
		label:  "interlock-test=" + id,
		image:  "interlock-swarm-test:" + id,
		prefix: "",
		seen:   map[string]bool{},
		lines:  map[string][]string{},
		ips:    map[string]string{},
	}
	t.Cleanup(c.cleanup)
	c.buildImage()
	c.createNetwork()
	return c
}

// buildImage builds examples/swarm statically on the host and packages it
// with deploy/Dockerfile.scratch, so nothing is pulled.
func (c *dockerCluster) buildImage() {
	c.t.Helper()
	dir := c.t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "interlock-swarm"), "./examples/swarm")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		c.t.Fatalf("CGO_ENABLED=0 go build ./examples/swarm: %v\n%s", err, out)
	}
	dockerfile, err := filepath.Abs(filepath.Join("..", "deploy", "Dockerfile.scratch"))
	if err != nil {
		c.t.Fatal(err)
	}
	c.must("build", "-q", "--label", c.label, "-f", dockerfile, "-t", c.image, dir)
}

// createNetwork creates a bridge network on a /24 of 10.231-10.254.x.0 that
// no other network uses, so replicas can be given fixed IPs.
func (c *dockerCluster) createNetwork() {
	c.t.Helper()
	c.network = "interlock-test-" + c.id
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		b := make([]byte, 2)
		if _, err := rand.Read(b); err != nil {
			c.t.Fatal(err)
		}
		prefix := fmt.Sprintf("10.%d.%d", 231+int(b[0])%24, b[1])
		_, err := docker("network", "create", "--driver", "bridge", "--label", c.label,
			"--subnet", prefix+".0/24", c.network)
		if err == nil {
			c.prefix = prefix
			return
		}
		lastErr = err
	}
	c.t.Fatalf("create a test network: %v", lastErr)
}

// cleanup removes every container, volume, network and image carrying the
// cluster's label, and stops the log followers.
func (c *dockerCluster) cleanup() {
	filter := "label=" + c.label
	if ids, _ := docker("ps", "-aq", "--filter", filter); ids != "" {
		if _, err := docker(append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...); err != nil {
			c.t.Errorf("cleanup: %v", err)
		}
	}
	c.stopFollowing()
	statusClient.CloseIdleConnections()
	if ids, _ := docker("volume", "ls", "-q", "--filter", filter); ids != "" {
		if _, err := docker(append([]string{"volume", "rm"}, strings.Fields(ids)...)...); err != nil {
			c.t.Errorf("cleanup: %v", err)
		}
	}
	if ids, _ := docker("network", "ls", "-q", "--filter", filter); ids != "" {
		if _, err := docker(append([]string{"network", "rm"}, strings.Fields(ids)...)...); err != nil {
			c.t.Errorf("cleanup: %v", err)
		}
	}
	if _, err := docker("image", "inspect", c.image); err == nil {
		if _, err := docker("image", "rm", "-f", c.image); err != nil {
			c.t.Errorf("cleanup: %v", err)
		}
	}
}

// use makes the cluster's helpers fail t, a subtest, until the returned
// function restores the test they failed before.
func (c *dockerCluster) use(t *testing.T) (restore func()) {
	prev := c.t
	c.t = t
	return func() { c.t = prev }
}

// ip returns the replica's current IP on the test network.
func (c *dockerCluster) ip(name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ips[name]
}

// name returns the name of the replica in slot i.
func (c *dockerCluster) name(i int) string { return fmt.Sprintf("ilk%s-%d", c.id, i) }

func (c *dockerCluster) names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = c.name(i)
	}
	return out
}

// run creates and starts the replica in slot i with IP host octet ipHost,
// listing the first n slots in its Join, and follows its log.
func (c *dockerCluster) run(i, n, ipHost int, extraEnv ...string) {
	c.t.Helper()
	name := c.name(i)
	vol := name + "-data"
	if _, err := docker("volume", "inspect", vol); err != nil {
		c.must("volume", "create", "--label", c.label, vol)
	}
	ip := fmt.Sprintf("%s.%d", c.prefix, ipHost)
	args := []string{"run", "-d", "--name", name, "--hostname", name, "--label", c.label,
		"--network", c.network, "--ip", ip, "-v", vol + ":/data",
		"-e", "INTERLOCK_JOIN=" + strings.Join(c.names(n), ","),
		"-e", "INTERLOCK_BOOTSTRAP_EXPECT=3",
		"-e", "INTERLOCK_JOBS=" + ctrJob + ":" + ctrInterval.String() + ",slow:1s",
		"-e", "INTERLOCK_LOCK_EVERY=1s",
		"-e", "INTERLOCK_LOG_FORMAT=json",
	}
	for _, e := range extraEnv {
		args = append(args, "-e", e)
	}
	id := c.must(append(args, c.image)...)
	c.mu.Lock()
	c.ips[name] = ip
	c.mu.Unlock()
	c.follow(name, id)
}

// start starts a stopped replica again and follows its log.
func (c *dockerCluster) start(names ...string) {
	c.t.Helper()
	c.must(append([]string{"start"}, names...)...)
	for _, n := range names {
		c.follow(n, c.must("inspect", "-f", "{{.Id}}", n))
	}
}

// stop stops replicas gracefully (SIGTERM, SIGKILL after 30 s) and returns
// how long docker stop took.
func (c *dockerCluster) stop(names ...string) time.Duration {
	c.t.Helper()
	begin := time.Now()
	c.must(append([]string{"stop", "-t", "30"}, names...)...)
	return time.Since(begin)
}

// remove removes stopped or killed replicas; their volumes stay.
func (c *dockerCluster) remove(names ...string) {
	c.t.Helper()
	c.must(append([]string{"rm", "-f"}, names...)...)
	c.mu.Lock()
	for _, n := range names {
		delete(c.ips, n)
	}
	c.mu.Unlock()
}

// follow reads the container's log until it stops, recording every run
// line. A restarted container's log starts again from its beginning;
// lines already seen are skipped.
func (c *dockerCluster) follow(name, id string) {
	c.t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command("docker", "logs", "-f", id)
	cmd.Stdout = pw
	cmd.Stderr = pw
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		c.t.Fatalf("docker logs -f %s: %v", name, err)
	}
	f := &follower{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			c.record(name, sc.Text())
		}
		io.Copy(io.Discard, pr)
		cmd.Wait()
		pr.Close()
	}()
	c.followMu.Lock()
	c.follows = append(c.follows, f)
	c.followMu.Unlock()
}

// follower is one docker logs -f process and its reader.
type follower struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// stopFollowing ends every docker logs -f still running and waits for
// their readers.
func (c *dockerCluster) stopFollowing() {
	c.followMu.Lock()
	fs := c.follows
	c.follows = nil
	c.followMu.Unlock()
	for _, f := range fs {
		select {
		case <-f.done:
		case <-time.After(5 * time.Second):
			f.cmd.Process.Kill()
			<-f.done
		}
	}
}

// logLine is the part of the example's JSON log lines the tests read.
type logLine struct {
	Message   string `json:"@message"`
	Level     string `json:"@level"`
	Timestamp string `json:"@timestamp"`
	Node      string `json:"node"`
	Job       string `json:"job"`
	Tick      int64  `json:"tick"`
	Token     uint64 `json:"token"`
}

func (c *dockerCluster) record(container, line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[line] {
		return
	}
	c.seen[line] = true
	c.lines[container] = append(c.lines[container], line)
	if !strings.Contains(line, `"@message":"run"`) {
		return
	}
	var l logLine
	if err := json.Unmarshal([]byte(line), &l); err != nil {
		c.root.Errorf("%s: unreadable run line %q: %v", container, line, err)
		return
	}
	ts, err := time.Parse(time.RFC3339Nano, l.Timestamp)
	if err != nil {
		c.root.Errorf("%s: run line with unreadable @timestamp %q: %v", container, line, err)
		return
	}
	iv := ctrInterval
	if l.Job != ctrJob {
		iv = time.Second
	}
	c.runs = append(c.runs, Run{Job: l.Job, Tick: l.Tick, Node: l.Node, Token: l.Token,
		At: l.Tick * int64(iv), Start: ts.UnixNano()})
}

// allRuns returns a copy of every run recorded so far, sorted.
func (c *dockerCluster) allRuns() []Run {
	c.mu.Lock()
	runs := slices.Clone(c.runs)
	c.mu.Unlock()
	sortRuns(runs)
	return runs
}

// logTail returns the last n log lines of every replica, for failure
// messages.
func (c *dockerCluster) logTail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for k := range c.lines {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		ls := c.lines[k]
		var keep []string
		for _, l := range ls {
			if !strings.Contains(l, `"@message":"run"`) {
				keep = append(keep, l)
			}
		}
		fmt.Fprintf(&b, "--- %s (last %d non-run lines)\n", k, n)
		for _, l := range keep[max(0, len(keep)-n):] {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// ctrStatus is a replica's GET /status answer.
type ctrStatus struct {
	Name     string `json:"name"`
	Ready    bool   `json:"ready"`
	Leader   string `json:"leader"`
	IsLeader bool   `json:"is_leader"`
	Servers  []struct {
		Name    string `json:"name"`
		Address string `json:"address"`
		Voter   bool   `json:"voter"`
	} `json:"servers"`
	Members []struct {
		Name    string `json:"name"`
		Address string `json:"address"`
		Status  string `json:"status"`
	} `json:"members"`
}

var statusClient = &http.Client{Timeout: 500 * time.Millisecond}

// status asks a replica for its view through its IP on the test network.
func (c *dockerCluster) status(name string) (ctrStatus, error) {
	c.mu.Lock()
	ip := c.ips[name]
	c.mu.Unlock()
	var st ctrStatus
	if ip == "" {
		return st, fmt.Errorf("%s has no container", name)
	}
	resp, err := statusClient.Get("http://" + ip + ":8080/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, err
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s: status %d", name, resp.StatusCode)
	}
	return st, nil
}

// healthy reports whether every replica in names answers, agrees on one
// leader among them, and has exactly names as alive members and as voters.
// It returns what is wrong if not.
func (c *dockerCluster) healthy(names []string) (leader string, problem string) {
	want := slices.Clone(names)
	sort.Strings(want)
	for _, n := range names {
		st, err := c.status(n)
		if err != nil {
			return "", err.Error()
		}
		if st.Leader == "" || (leader != "" && st.Leader != leader) {
			return "", fmt.Sprintf("%s sees leader %q, another sees %q", n, st.Leader, leader)
		}
		leader = st.Leader
		var voters, alive []string
		for _, s := range st.Servers {
			if s.Voter {
				voters = append(voters, s.Name)
			}
		}
		for _, m := range st.Members {
			if m.Status == "alive" {
				alive = append(alive, m.Name)
			}
		}
		sort.Strings(voters)
		sort.Strings(alive)
		if !slices.Equal(voters, want) || !slices.Equal(alive, want) {
			return "", fmt.Sprintf("%s sees voters %v and alive members %v, want %v", n, voters, alive, want)
		}
	}
	if !slices.Contains(names, leader) {
		return "", fmt.Sprintf("leader %q is not one of %v", leader, names)
	}
	return leader, ""
}

// waitHealthy waits until healthy(names) holds and returns the leader.
func (c *dockerCluster) waitHealthy(names []string, timeout time.Duration) string {
	c.t.Helper()
	var leader, problem string
	deadline := time.Now().Add(timeout)
	for {
		if leader, problem = c.healthy(names); problem == "" {
			return leader
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("cluster of %v not healthy after %s: %s\n%s", names, timeout, problem, c.logTail(15))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pid returns the host PID of a running container's process.
func (c *dockerCluster) pid(name string) int {
	c.t.Helper()
	p, err := strconv.Atoi(c.must("inspect", "-f", "{{.State.Pid}}", name))
	if err != nil || p <= 0 {
		c.t.Fatalf("%s has no running process (pid %d, %v)", name, p, err)
	}
	return p
}

// netns runs iptables in the network namespace of the container's process.
func (c *dockerCluster) iptables(name string, args ...string) {
	c.t.Helper()
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(c.pid(name)), "-n", "iptables"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("nsenter -t <pid of %s> -n iptables %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// runsBetween returns the runs of job that started in [from, to].
func runsBetween(runs []Run, job string, from, to time.Time) []Run {
	var out []Run
	for _, r := range runs {
		if r.Job == job && r.Start >= from.UnixNano() && r.Start <= to.UnixNano() {
			out = append(out, r)
		}
	}
	return out
}

// longestGap returns the longest time without a start of a job's run
// between from and to: between consecutive starts in [from, to], from the
// last start before from (or from itself, if none) to the first in it, and
// from the last one to to.
func longestGap(runs []Run, job string, from, to time.Time) time.Duration {
	left, prev := from.UnixNano(), int64(-1)
	for _, r := range runs {
		if r.Job == job && r.Start < left && r.Start > prev {
			prev = r.Start
		}
	}
	if prev >= 0 {
		left = prev
	}
	starts := []int64{left}
	for _, r := range runsBetween(runs, job, from, to) {
		starts = append(starts, r.Start)
	}
	starts = append(starts, to.UnixNano())
	slices.Sort(starts)
	var gap time.Duration
	for i := 1; i < len(starts); i++ {
		gap = max(gap, time.Duration(starts[i]-starts[i-1]))
	}
	return gap
}

// waitRunAfter waits until a run of the job has started after t, by node
// if it is not empty.
func (c *dockerCluster) waitRunAfter(t time.Time, timeout time.Duration, node string) {
	c.t.Helper()
	eventually(c.t, timeout, func() bool {
		for _, r := range runsBetween(c.allRuns(), ctrJob, t, time.Now().Add(time.Hour)) {
			if node == "" || r.Node == node {
				return true
			}
		}
		return false
	}, "no run of %s after %s by %q\n%s", ctrJob, t.Format("15:04:05.000"), node, lazy(func() string { return c.logTail(15) }))
}

var errNoIptables = errors.New("iptables is not installed on the host; the partition test enters the container's network namespace with nsenter and adds DROP rules with it (apt-get install -y iptables)")
