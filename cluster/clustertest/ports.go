package clustertest

import (
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The ports this test binary handed out, and where the next search starts.
var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
	portsNext int
)

// portRange returns the ports FreePorts hands out: the 12000 ports just
// below the kernel's ephemeral range (ip_local_port_range, 32768-60999 by
// default). The kernel never picks a port there for a connection's source
// port or for a listener on port 0, so once a node has bound one, no other
// process's outgoing connection takes it while the node is down between a
// stop and a restart on the same address, and other tests on the host that
// listen on port 0 never collide with ours. A port from port 0 did: a CI
// run's restart of a node found its Raft port taken ("address already in
// use") by a connection of a test running beside it.
func portRange() (lo, hi int) {
	ephemeral := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				ephemeral = v
			}
		}
	}
	hi = ephemeral - 1
	lo = max(1024, hi-12000)
	return lo, hi
}

// FreePorts returns n ports that were free on 127.0.0.1 for both TCP and
// UDP when checked (gossip needs both on one port), never handing out a
// port twice in one test binary, so clusters started in one test never
// collide with each other. The ports come from portRange, starting at a
// random point in it, so two test binaries running at once rarely probe
// the same ports. Another process that binds a fixed port there can still
// take one before a node binds it; the node's Start then fails naming the
// address. It is safe for concurrent use.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	lo, hi := portRange()
	if portsNext == 0 {
		portsNext = lo + int(time.Now().UnixNano()%int64(hi-lo))
	}
	var ports []int
	var held []io.Closer
	defer func() {
		for _, h := range held {
			h.Close()
		}
	}()
	for attempts := 0; len(ports) < n; attempts++ {
		if attempts > hi-lo {
			t.Fatalf("could not find %d free ports in %d-%d", n, lo, hi)
		}
		port := portsNext
		portsNext++
		if portsNext > hi {
			portsNext = lo
		}
		if portsUsed[port] {
			continue
		}
		a := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", a)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", a)
		if err != nil {
			ln.Close()
			continue
		}
		held = append(held, ln, pc)
		portsUsed[port] = true
		ports = append(ports, port)
	}
	return ports
}
