// Command lock shows Interlock's distributed lock used without a scheduler:
// two processes contend for one lock and pass its fencing token to a small
// store that rejects stale tokens.
//
// Run it with
//
//	go run ./examples/lock
//
// The parent process runs the store, an HTTP server on 127.0.0.1 that
// accepts a write only if its token is at least the highest token it has
// accepted (the check Kleppmann's "How to do distributed locking" asks of
// any resource guarded by a lease). It then starts two copies of itself as
// worker processes, which form a two-node Interlock cluster and take turns
// holding the lock "invoice-export". Each holder writes to the store with
// its lease's token.
//
// Worker w2 misbehaves once on purpose: while holding the lock it stops for
// longer than its lease (as a long GC pause or a SIGSTOP would), so the
// lease expires and w1 takes the lock with a higher token. When w2 wakes up
// and writes with its old token, the store rejects the write, and w2's
// Unlock reports the lease lost instead of freeing w1's lock.
//
// The last line summarizes: accepted=N rejected_stale=M. The example exits
// non-zero unless exactly the paused write was rejected.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/cluster"
)

const lockName = "invoice-export"

func main() {
	role := flag.String("role", "parent", "parent, or worker (started by the parent)")
	name := flag.String("name", "", "worker: node name")
	gossip := flag.String("gossip", "", "worker: gossip host:port")
	raftAddr := flag.String("raft", "", "worker: raft host:port")
	join := flag.String("join", "", "worker: a peer's gossip host:port")
	store := flag.String("store", "", "worker: store URL")
	rounds := flag.Int("rounds", 5, "lock rounds per worker")
	pause := flag.Bool("pause", false, "worker: stall past the lease once")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if *role == "worker" {
		err = worker(ctx, *name, *gossip, *raftAddr, *join, *store, *rounds, *pause)
	} else {
		err = parent(ctx, *rounds)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// fencedStore is the resource: it remembers the highest token it accepted.
type fencedStore struct {
	mu       sync.Mutex
	highest  uint64
	accepted int
	rejected int
}

func (s *fencedStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, err := strconv.ParseUint(r.URL.Query().Get("token"), 10, 64)
	if err != nil {
		http.Error(w, "token must be a number", http.StatusBadRequest)
		return
	}
	writer := r.URL.Query().Get("writer")
	s.mu.Lock()
	defer s.mu.Unlock()
	if token < s.highest {
		s.rejected++
		fmt.Printf("store: REJECTED write from %s with stale token %d (highest %d)\n", writer, token, s.highest)
		http.Error(w, "stale token", http.StatusConflict)
		return
	}
	s.highest = token
	s.accepted++
	fmt.Printf("store: accepted write from %s with token %d\n", writer, token)
}

func parent(ctx context.Context, rounds int) error {
	st := &fencedStore{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: st}
	go srv.Serve(ln)
	defer srv.Close()
	storeURL := "http://" + ln.Addr().String() + "/write"

	ports, err := freePorts(4)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	workers := []*exec.Cmd{
		exec.CommandContext(ctx, self, "-role", "worker", "-name", "w1", "-gossip", addr(ports[0]), "-raft", addr(ports[1]),
			"-join", addr(ports[2]), "-store", storeURL, "-rounds", strconv.Itoa(rounds)),
		exec.CommandContext(ctx, self, "-role", "worker", "-name", "w2", "-gossip", addr(ports[2]), "-raft", addr(ports[3]),
			"-join", addr(ports[0]), "-store", storeURL, "-rounds", strconv.Itoa(rounds), "-pause"),
	}
	for _, w := range workers {
		w.Stdout, w.Stderr = os.Stdout, os.Stderr
		if err := w.Start(); err != nil {
			return fmt.Errorf("start worker: %w", err)
		}
	}
	var errs []error
	for _, w := range workers {
		if err := w.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("worker %v: %w", w.Args[4], err))
		}
	}
	st.mu.Lock()
	accepted, rejected := st.accepted, st.rejected
	st.mu.Unlock()
	fmt.Printf("accepted=%d rejected_stale=%d\n", accepted, rejected)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if rejected != 1 {
		return fmt.Errorf("want exactly the paused holder's write rejected, got %d rejections", rejected)
	}
	return nil
}

func worker(ctx context.Context, name, gossip, raftAddr, join, storeURL string, rounds int, pause bool) error {
	logger := hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn})
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	node, err := cluster.Start(startCtx, cluster.Config{
		NodeName: name, BindAddr: gossip, RaftAddr: raftAddr, Join: []string{join},
		BootstrapExpect: 2, Logger: logger,
	})
	if err != nil {
		return err
	}
	defer node.Shutdown()

	const ttl = 500 * time.Millisecond
	for i := 0; i < rounds; i++ {
		lease, err := node.Lock(ctx, lockName, ttl)
		if err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		fmt.Printf("%s: holds %s with token %d\n", name, lockName, lease.Token())
		if pause && i == 1 {
			fmt.Printf("%s: stalling for %s, past the %s lease\n", name, 3*ttl, ttl)
			select {
			case <-lease.Done():
				fmt.Printf("%s: lease lost while stalled (Done closed)\n", name)
			case <-ctx.Done():
				return ctx.Err()
			}
			// Let the other worker take the lock and write first.
			if err := waitForOtherHolder(ctx, node, lease.Token()); err != nil {
				return err
			}
		}
		if err := write(ctx, storeURL, name, lease.Token()); err != nil {
			fmt.Printf("%s: write refused: %v\n", name, err)
		}
		if err := lease.Unlock(ctx); err != nil {
			if errors.Is(err, cluster.ErrLeaseLost) {
				fmt.Printf("%s: unlock: lease already lost; the new holder keeps the lock\n", name)
				continue
			}
			return fmt.Errorf("unlock: %w", err)
		}
	}
	return nil
}

// waitForOtherHolder waits until the other worker has taken the lock with a
// higher token and written with it, so the stale write comes after.
func waitForOtherHolder(ctx context.Context, node *cluster.Node, stale uint64) error {
	for {
		st, ok := node.State().Lock(lockName)
		if ok && st.Token > stale {
			// Give the new holder its write; the store's order is what
			// the demonstration is about, so wait for the lock to move on.
			for {
				cur, held := node.State().Lock(lockName)
				if !held || cur.Token != st.Token {
					return nil
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(10 * time.Millisecond):
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func write(ctx context.Context, storeURL, writer string, token uint64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, storeURL+"?writer="+writer+"&token="+strconv.FormatUint(token, 10), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("store answered %s", resp.Status)
	}
	return nil
}

// freePorts returns ports free for both TCP and UDP on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ports []int
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for len(ports) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		p := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			ln.Close()
			continue
		}
		closers = append(closers, func() { ln.Close(); pc.Close() })
		ports = append(ports, p)
	}
	return ports, nil
}
