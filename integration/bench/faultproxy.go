package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// partitioner is a set of TCP proxies on loopback that the bench controls,
// in front of every connection between replicas (Raft/RPC, etcd peer and
// client ports) and between a replica and a shared store (Redis). It knows
// which replica process opened each connection (from the kernel's socket
// tables), so it can cut one replica off from all the others while each
// keeps talking to itself: a network partition, on one machine.
type partitioner struct {
	mu     sync.Mutex
	pids   func() []int // the replica processes, by replica index
	victim int          // the cut-off replica, or -1
	conns  []*proxied
	lns    []net.Listener
}

type proxied struct {
	src, dst int // replica indexes; dst -1 is a shared store; src -1 until known
	port     int // the client's port, to find src later
	a, b     net.Conn
}

func newPartitioner(pids func() []int) *partitioner {
	return &partitioner{pids: pids, victim: -1}
}

// cut reports whether a connection from src to dst crosses the partition.
func (p *partitioner) cut(src, dst int) bool {
	if p.victim < 0 || src < 0 {
		return false
	}
	if dst < 0 {
		return src == p.victim
	}
	return (src == p.victim) != (dst == p.victim)
}

// proxy forwards connections to listen to target; dst is the replica that
// owns target, or -1 for a shared store.
func (p *partitioner) proxy(listen, target, dst int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(listen))
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.lns = append(p.lns, ln)
	p.mu.Unlock()
	go func() {
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(a, target, dst)
		}
	}()
	return nil
}

func (p *partitioner) serve(a net.Conn, target, dst int) {
	port := a.RemoteAddr().(*net.TCPAddr).Port
	src := p.owner(port)
	p.mu.Lock()
	refused := p.cut(src, dst)
	p.mu.Unlock()
	if refused {
		a.Close()
		return
	}
	b, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(target))
	if err != nil {
		a.Close()
		return
	}
	c := &proxied{src: src, dst: dst, port: port, a: a, b: b}
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
	go func() { _, _ = io.Copy(b, a); b.Close(); a.Close() }()
	go func() { _, _ = io.Copy(a, b); a.Close(); b.Close() }()
}

// isolate cuts replica v off from every other replica and store (v -1
// heals): existing connections across the cut are closed, new ones are
// closed as soon as they are accepted.
func (p *partitioner) isolate(v int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.victim = v
	live := p.conns[:0]
	for _, c := range p.conns {
		// Connections opened while the replicas were starting may predate
		// the list of their processes: find their owner now.
		if c.src < 0 {
			c.src = p.owner(c.port)
		}
		if p.cut(c.src, c.dst) {
			c.a.Close()
			c.b.Close()
			continue
		}
		live = append(live, c)
	}
	p.conns = live
}

func (p *partitioner) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ln := range p.lns {
		ln.Close()
	}
	for _, c := range p.conns {
		c.a.Close()
		c.b.Close()
	}
}

// owner returns the index of the replica process that holds the loopback
// socket bound to port, or -1: the socket's inode from /proc/net/tcp, then
// the process whose file descriptors include it.
func (p *partitioner) owner(port int) int {
	inode := socketInode(port)
	if inode == "" {
		return -1
	}
	want := "socket:[" + inode + "]"
	for i, pid := range p.pids() {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && l == want {
				return i
			}
		}
	}
	return -1
}

// socketInode finds the inode of the IPv4 TCP socket whose local port is
// port in /proc/net/tcp.
func socketInode(port int) string {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return ""
	}
	defer f.Close()
	hexPort := fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 9 && strings.HasSuffix(fs[1], hexPort) {
			return fs[9]
		}
	}
	return ""
}
