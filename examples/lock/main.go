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
// The workers coordinate through the store so the run always ends: a
// worker that has done its -rounds keeps contending for the lock until
// every worker has done its own (so the stalled holder always has someone
// to lose the lock to), and they leave the cluster one after the other.
// Each worker also gives up with an error after -timeout.
//
// The last line summarizes: accepted=N rejected_stale=M. The example exits
// non-zero unless exactly the paused write was rejected.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
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
	rounds := flag.Int("rounds", 5, "lock rounds per worker (at least 2)")
	pause := flag.Bool("pause", false, "worker: stall past the lease once")
	timeout := flag.Duration("timeout", 2*time.Minute, "a worker gives up with an error after this long")
	flag.Parse()
	if *rounds < 2 {
		fmt.Fprintln(os.Stderr, "error: -rounds must be at least 2")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if *role == "worker" {
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		err = worker(ctx, workerConfig{name: *name, gossip: *gossip, raft: *raftAddr, join: *join, store: *store, rounds: *rounds, pause: *pause})
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%s did not finish within -timeout %s: %w", *name, *timeout, err)
		}
	} else {
		err = parent(ctx, *rounds, *timeout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// workers are the worker names, in the order they leave the cluster.
var workers = []string{"w1", "w2"}

// fencedStore is the resource: it remembers the highest token it accepted.
// It also keeps the workers' progress (see phase), which they read to know
// when to stop.
type fencedStore struct {
	mu       sync.Mutex
	highest  uint64
	accepted int
	rejected int
	phases   map[string][]string // phase -> workers that reached it
}

// phase is a step of a worker's life that the others wait on.
type phase string

const (
	// phaseFinished: the worker has done its rounds (it keeps contending
	// until every worker has).
	phaseFinished phase = "finished"
	// phaseOut: the worker no longer takes the lock.
	phaseOut phase = "out"
	// phaseGone: the worker's node has left the cluster.
	phaseGone phase = "gone"
)

// storeState is what GET /state returns.
type storeState struct {
	Highest uint64              `json:"highest"`
	Phases  map[string][]string `json:"phases"`
}

func (s storeState) all(p phase) bool { return len(s.Phases[string(p)]) == len(workers) }

func (s storeState) reached(p phase, worker string) bool {
	for _, w := range s.Phases[string(p)] {
		if w == worker {
			return true
		}
	}
	return false
}

func (s *fencedStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.URL.Path {
	case "/write":
		s.write(w, q)
	case "/mark":
		p, writer := q.Get("phase"), q.Get("writer")
		if !(storeState{Phases: s.phases}).reached(phase(p), writer) {
			s.phases[p] = append(s.phases[p], writer)
		}
	case "/state":
		json.NewEncoder(w).Encode(storeState{Highest: s.highest, Phases: s.phases})
	default:
		http.NotFound(w, r)
	}
}

func (s *fencedStore) write(w http.ResponseWriter, q url.Values) {
	token, err := strconv.ParseUint(q.Get("token"), 10, 64)
	if err != nil {
		http.Error(w, "token must be a number", http.StatusBadRequest)
		return
	}
	writer := q.Get("writer")
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

func parent(ctx context.Context, rounds int, timeout time.Duration) error {
	st := &fencedStore{phases: make(map[string][]string)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: st}
	go srv.Serve(ln)
	defer srv.Close()
	storeURL := "http://" + ln.Addr().String()

	ports, err := freePorts(2 * len(workers))
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	// If one worker fails, the other is interrupted rather than left
	// waiting for it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(workers))
	for i, name := range workers {
		args := []string{"-role", "worker", "-name", name,
			"-gossip", addr(ports[2*i]), "-raft", addr(ports[2*i+1]),
			"-join", addr(ports[2*((i+1)%len(workers))]), "-store", storeURL,
			"-rounds", strconv.Itoa(rounds), "-timeout", timeout.String()}
		if name == "w2" {
			args = append(args, "-pause")
		}
		cmd := exec.CommandContext(ctx, self, args...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 10 * time.Second
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start worker %s: %w", name, err)
		}
		go func() {
			err := cmd.Wait()
			if err != nil {
				err = fmt.Errorf("worker %s: %w", name, err)
				cancel()
			}
			errs <- err
		}()
	}
	var failed []error
	for range workers {
		if err := <-errs; err != nil {
			failed = append(failed, err)
		}
	}
	st.mu.Lock()
	accepted, rejected := st.accepted, st.rejected
	st.mu.Unlock()
	fmt.Printf("accepted=%d rejected_stale=%d\n", accepted, rejected)
	if err := errors.Join(failed...); err != nil {
		return err
	}
	if rejected != 1 {
		return fmt.Errorf("want exactly the paused holder's write rejected, got %d rejections", rejected)
	}
	return nil
}

type workerConfig struct {
	name, gossip, raft, join, store string
	rounds                          int
	pause                           bool
}

func worker(ctx context.Context, wc workerConfig) error {
	logger := hclog.New(&hclog.LoggerOptions{Name: wc.name, Level: hclog.Warn})
	node, err := cluster.Start(ctx, cluster.Config{
		NodeName: wc.name, BindAddr: wc.gossip, RaftAddr: wc.raft, Join: []string{wc.join},
		BootstrapExpect: len(workers), Logger: logger,
	})
	if err != nil {
		return err
	}
	defer node.Shutdown(context.Background()) // on error paths; the normal path shuts down in order below
	st := &storeClient{url: wc.store, name: wc.name}

	const ttl = 500 * time.Millisecond
	for i := 0; ; i++ {
		if i >= wc.rounds {
			// Done, but keep contending until every worker is, so a
			// stalled holder always has someone to lose the lock to.
			if err := st.mark(ctx, phaseFinished); err != nil {
				return err
			}
			s, err := st.state(ctx)
			if err != nil {
				return err
			}
			if s.all(phaseFinished) {
				break
			}
		}
		lease, err := node.Lock(ctx, lockName, ttl)
		if err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		fmt.Printf("%s: holds %s with token %d\n", wc.name, lockName, lease.Token())
		if wc.pause && i == 1 {
			fmt.Printf("%s: stalling for %s, past the %s lease\n", wc.name, 3*ttl, ttl)
			select {
			case <-lease.Done():
				fmt.Printf("%s: lease lost while stalled (Done closed)\n", wc.name)
			case <-ctx.Done():
				return ctx.Err()
			}
			// Let the new holder write first: the store's order is what
			// the demonstration is about.
			if err := st.await(ctx, func(s storeState) bool { return s.Highest > lease.Token() }); err != nil {
				return err
			}
		}
		if err := write(ctx, wc.store, wc.name, lease.Token()); err != nil {
			fmt.Printf("%s: write refused: %v\n", wc.name, err)
		}
		if err := lease.Unlock(ctx); err != nil {
			if errors.Is(err, cluster.ErrLeaseLost) {
				fmt.Printf("%s: unlock: lease already lost; the new holder keeps the lock\n", wc.name)
				continue
			}
			return fmt.Errorf("unlock: %w", err)
		}
	}

	// Leave one at a time, in the order of workers, once nobody takes the
	// lock any more, so no leave races another's.
	if err := st.mark(ctx, phaseOut); err != nil {
		return err
	}
	for _, w := range workers {
		if w == wc.name {
			break
		}
		if err := st.await(ctx, func(s storeState) bool { return s.all(phaseOut) && s.reached(phaseGone, w) }); err != nil {
			return err
		}
	}
	if err := st.await(ctx, func(s storeState) bool { return s.all(phaseOut) }); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := node.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return st.mark(ctx, phaseGone)
}

// storeClient is a worker's view of the store's coordination endpoints.
type storeClient struct {
	url, name string
}

func (c *storeClient) mark(ctx context.Context, p phase) error {
	return post(ctx, c.url+"/mark?writer="+c.name+"&phase="+string(p))
}

func (c *storeClient) state(ctx context.Context) (storeState, error) {
	var s storeState
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"/state", nil)
	if err != nil {
		return s, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// await polls the store until cond holds or ctx ends.
func (c *storeClient) await(ctx context.Context, cond func(storeState) bool) error {
	for {
		s, err := c.state(ctx)
		if err != nil {
			return err
		}
		if cond(s) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func write(ctx context.Context, storeURL, writer string, token uint64) error {
	return post(ctx, storeURL+"/write?writer="+writer+"&token="+strconv.FormatUint(token, 10))
}

func post(ctx context.Context, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
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
