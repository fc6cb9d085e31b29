package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// ensureRedis installs redis-server from Debian packages when it is missing.
func ensureRedis() error {
	if _, err := exec.LookPath("redis-server"); err == nil {
		return nil
	}
	progress("redis-server not found: apt-get update && apt-get install -y redis-server")
	for _, args := range [][]string{{"update", "-q"}, {"install", "-y", "-q", "redis-server"}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %v: %v\n%s", args, err, out)
		}
	}
	_, err := exec.LookPath("redis-server")
	return err
}

func redisVersion() string {
	out, err := exec.Command("redis-server", "--version").Output()
	if err != nil {
		return "?"
	}
	return string(trimNL(out))
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// redisServer is a redis-server we started and stop by its PID.
type redisServer struct {
	addr string
	port int
	dir  string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// startRedis starts redis-server on a free loopback port with no
// persistence, or with appendonly + appendfsync always when fsyncAlways.
func startRedis(dir string, fsyncAlways bool) (*redisServer, error) {
	port := freePorts(1)[0]
	r := &redisServer{addr: "127.0.0.1:" + strconv.Itoa(port), port: port, dir: dir}
	r.args = []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir, "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning"}
	if fsyncAlways {
		r.args = append(r.args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		r.args = append(r.args, "--appendonly", "no")
	}
	return r, r.start()
}

func (r *redisServer) start() error {
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(r.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	r.cmd = exec.Command("redis-server", r.args...)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}(r.cmd, r.done)
	cli := redis.NewClient(&redis.Options{Addr: r.addr})
	defer cli.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := cli.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			r.kill()
			return fmt.Errorf("redis-server on %s did not answer PING: %v", r.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *redisServer) pid() int { return r.cmd.Process.Pid }

// kill stops the server by its PID with SIGKILL, as a crash would.
func (r *redisServer) kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

// stop stops the server by its PID with SIGTERM.
func (r *redisServer) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		r.kill()
	}
}
