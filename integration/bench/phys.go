package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// fsyncLatency times n loops of a 512-byte write followed by fsync, in a
// file under dir (the same disk as the systems' data directories).
func fsyncLatency(dir string, n int) (durs, error) {
	return fsyncLoop(filepath.Join(dir, "fsync-probe"), n)
}

// fsyncParallel runs fsyncLoop in writers goroutines at once, each on a
// file of its own under dir, as the three nodes of a cluster on one disk
// do. It returns every loop's time and the wall time of the whole, so the
// caller can tell whether the disk serves the flushes side by side (the
// total rate grows with writers) or one at a time (each loop slows by the
// number of writers).
func fsyncParallel(dir string, writers, n int) (durs, time.Duration, error) {
	var (
		mu    sync.Mutex
		all   = make(durs, 0, writers*n)
		first error
		wg    sync.WaitGroup
	)
	start := time.Now()
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := fsyncLoop(filepath.Join(dir, fmt.Sprintf("fsync-probe-%d", i)), n)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			all = append(all, d...)
		}()
	}
	wg.Wait()
	return all, time.Since(start), first
}

func fsyncLoop(path string, n int) (durs, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 512)
	out := make(durs, 0, n)
	for i := 0; i < n; i++ {
		buf[0] = byte(i)
		t := time.Now()
		if _, err := f.Write(buf); err != nil {
			return nil, err
		}
		if err := f.Sync(); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t))
	}
	return out, nil
}

// tcpRTT times n round trips of 64 bytes over one loopback TCP connection.
func tcpRTT(n int) (durs, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	buf := make([]byte, 64)
	out := make(durs, 0, n)
	for i := 0; i < n; i++ {
		t := time.Now()
		if _, err := c.Write(buf); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t))
	}
	return out, nil
}
