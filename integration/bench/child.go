package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A run as reported by any system: which job, which tick (-1 when the
// system has no notion of ticks), when it started, on which replica.
type runRec struct {
	job   string
	tick  int64
	start time.Time
	node  string
	token uint64
}

// recorder collects runs from many goroutines.
type recorder struct {
	mu   sync.Mutex
	runs []runRec
}

func (r *recorder) add(x runRec) {
	r.mu.Lock()
	r.runs = append(r.runs, x)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []runRec {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]runRec(nil), r.runs...)
}

// child is a replica running as a child process of this binary (a "role").
// Its stdout protocol, one line each:
//
//	READY
//	RUN <job> <tick> <start-unix-nanos> <token>
//	LEADER <0|1>
//
// Its stdin takes "kill"; EOF stops it.
type child struct {
	name string
	// clientEndpoint is an etcd replica's client address.
	clientEndpoint string
	cmd            *exec.Cmd
	stdin          io.WriteCloser
	logPath        string

	ready  chan struct{}
	exited chan struct{}
	exitAt time.Time
	err    error

	mu     sync.Mutex
	leader bool
	holder bool

	// How it was started, for restart.
	dir, role string
	rec       *recorder
	args      []string
}

// startChild re-executes this binary with -role=role and args. Runs are
// sent to rec (which may be nil).
func startChild(dir, name, role string, rec *recorder, args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := &child{name: name, ready: make(chan struct{}), exited: make(chan struct{}), dir: dir, role: role, rec: rec, args: args}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c.logPath = filepath.Join(dir, name+".stderr.log")
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	c.cmd = exec.Command(exe, append([]string{"-role=" + role, "-name=" + name}, args...)...)
	c.cmd.Stderr = logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		logf.Close()
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() {
		var readyOnce sync.Once
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 0 {
				continue
			}
			switch f[0] {
			case "READY":
				readyOnce.Do(func() { close(c.ready) })
			case "LEADER":
				c.mu.Lock()
				c.leader = len(f) > 1 && f[1] == "1"
				c.mu.Unlock()
			case "HOLDER":
				c.mu.Lock()
				c.holder = len(f) > 1 && f[1] == "1"
				c.mu.Unlock()
			case "RUN":
				if len(f) < 5 || rec == nil {
					continue
				}
				tick, _ := strconv.ParseInt(f[2], 10, 64)
				ns, _ := strconv.ParseInt(f[3], 10, 64)
				tok, _ := strconv.ParseUint(f[4], 10, 64)
				rec.add(runRec{job: f[1], tick: tick, start: time.Unix(0, ns), node: name, token: tok})
			}
		}
		c.err = c.cmd.Wait()
		c.exitAt = time.Now()
		logf.Close()
		close(c.exited)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) isLeader() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader
}

func (c *child) isHolder() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.holder
}

func (c *child) alive() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

func (c *child) send(line string) {
	_, _ = io.WriteString(c.stdin, line+"\n")
}

// waitReady waits for READY, the child's exit, or the timeout.
func (c *child) waitReady(timeout time.Duration) error {
	select {
	case <-c.ready:
		return nil
	case <-c.exited:
		return fmt.Errorf("%s exited before it was ready (%v); see %s:\n%s", c.name, c.err, c.logPath, tail(c.logPath))
	case <-time.After(timeout):
		return fmt.Errorf("%s not ready after %s; see %s:\n%s", c.name, timeout, c.logPath, tail(c.logPath))
	}
}

// restart starts the child again with the same name, role and arguments
// (so the same ports and data directory), once it has exited, and waits
// until it is ready.
func (c *child) restart() (*child, error) {
	<-c.exited
	nc, err := startChild(c.dir, c.name, c.role, c.rec, c.args...)
	if err != nil {
		return nil, err
	}
	nc.clientEndpoint = c.clientEndpoint
	if err := nc.waitReady(60 * time.Second); err != nil {
		nc.sigkill()
		<-nc.exited
		return nil, err
	}
	return nc, nil
}

// signal sends sig to the child by PID (SIGSTOP, SIGCONT).
func (c *child) signal(sig syscall.Signal) {
	_ = c.cmd.Process.Signal(sig)
}

// sigkill kills the child by PID, as a crash would.
func (c *child) sigkill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// stopAll ends the children by PID with SIGKILL: nothing is measured at
// teardown, their data is temporary, and a graceful leave would cost seconds
// per cluster.
func stopAll(cs []*child) {
	for _, c := range cs {
		if c != nil && c.alive() {
			c.sigkill()
		}
	}
	for _, c := range cs {
		if c != nil {
			<-c.exited
		}
	}
}

// freePorts returns n ports free on 127.0.0.1 for TCP and UDP when checked.
func freePorts(n int) []int {
	var ports []int
	var holds []func()
	defer func() {
		for _, h := range holds {
			h()
		}
	}()
	for len(ports) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			ln.Close()
			continue
		}
		holds = append(holds, func() { ln.Close(); pc.Close() })
		ports = append(ports, port)
	}
	return ports
}

// childIO is the child side of the protocol: a locked stdout and a stdin
// reader.
type childIO struct {
	mu  sync.Mutex
	out *bufio.Writer
}

func newChildIO() *childIO { return &childIO{out: bufio.NewWriterSize(os.Stdout, 1<<16)} }

func (o *childIO) line(format string, args ...any) {
	o.mu.Lock()
	fmt.Fprintf(o.out, format+"\n", args...)
	o.out.Flush()
	o.mu.Unlock()
}

func (o *childIO) run(job string, tick int64, start time.Time, token uint64) {
	o.line("RUN %s %d %d %d", job, tick, start.UnixNano(), token)
}

// commands delivers stdin lines; the channel closes at EOF.
func commands() <-chan string {
	ch := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			ch <- strings.TrimSpace(sc.Text())
		}
		close(ch)
	}()
	return ch
}
