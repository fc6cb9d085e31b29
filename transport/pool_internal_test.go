package transport

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// TestClientDropsStaleIdleConnections checks the client's half of the idle
// contract: a pooled connection idle longer than clientIdleTimeout (half
// the server's rpcIdleTimeout) is closed and replaced by a new dial, never
// reused, while a recently used one is reused.
func TestClientDropsStaleIdleConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		accepted []net.Conn
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range accepted {
			c.Close()
		}
	})
	dials := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted)
	}
	waitDials := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for dials() != want {
			if time.Now().After(deadline) {
				t.Fatalf("server accepted %d connections, want %d", dials(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	c := NewClient(nil)
	defer c.Close()
	ctx := context.Background()
	addr := ln.Addr().String()

	first, err := c.get(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	waitDials(1)
	c.put(addr, first)
	if again, err := c.get(ctx, addr); err != nil || again != first {
		t.Fatalf("a connection idle for a moment was not reused (%v)", err)
	}
	c.put(addr, first)
	c.mu.Lock()
	first.idleSince = time.Now().Add(-clientIdleTimeout - time.Second)
	c.mu.Unlock()
	fresh, err := c.get(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if fresh == first {
		t.Fatalf("a connection idle past clientIdleTimeout was reused")
	}
	waitDials(2)
	if _, err := first.Write([]byte{0}); err == nil {
		t.Errorf("the stale connection was left open")
	}
	fresh.Close()
	if clientIdleTimeout >= rpcIdleTimeout {
		t.Errorf("clientIdleTimeout %v must be below the server's rpcIdleTimeout %v", clientIdleTimeout, rpcIdleTimeout)
	}
}
