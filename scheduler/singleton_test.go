package scheduler

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/internal/runreg"
)

// fakeLease is a lease a test can take away.
type fakeLease struct {
	token    uint64
	done     chan struct{}
	once     sync.Once
	unlocked chan struct{}
}

func (l *fakeLease) Token() uint64         { return l.token }
func (l *fakeLease) Done() <-chan struct{} { return l.done }
func (l *fakeLease) lose()                 { l.once.Do(func() { close(l.done) }) }
func (l *fakeLease) Unlock(context.Context) error {
	select {
	case <-l.done:
		return cluster.ErrLeaseLost
	default:
	}
	l.lose()
	close(l.unlocked)
	return nil
}

// fakeSingletonLock grants every request at once, with growing tokens, as
// the lock of a one-replica cluster would.
type fakeSingletonLock struct {
	mu     sync.Mutex
	leases []*fakeLease
	names  []string
}

func (f *fakeSingletonLock) lock(ctx context.Context, name string, ttl time.Duration) (singletonLease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := &fakeLease{token: uint64(10 * (len(f.leases) + 1)), done: make(chan struct{}), unlocked: make(chan struct{})}
	f.leases = append(f.leases, l)
	f.names = append(f.names, name)
	return l, nil
}

func (f *fakeSingletonLock) lease(i int) *fakeLease {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i >= len(f.leases) {
		return nil
	}
	return f.leases[i]
}

// singletonCall is one call of a Singleton's Func.
type singletonCall struct {
	token uint64
	start time.Time
	err   error // its context's error when it returned, if it waited
}

// runFakeSingleton runs s on a fake lock and registry until the test ends.
// done is closed when Run returned, with its error in *runErr.
func runFakeSingleton(t *testing.T, s *Singleton, delay time.Duration) (lock *fakeSingletonLock, reg *runreg.Registry, cancel context.CancelFunc, done chan struct{}, runErr *error) {
	t.Helper()
	lock = &fakeSingletonLock{}
	reg = runreg.New()
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan struct{})
	runErr = new(error)
	go func() {
		defer close(done)
		*runErr = s.run(ctx, lock.lock, reg, hclog.NewNullLogger(), time.Second, delay)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Singleton's Run did not return within 10s of cancel")
		}
	})
	return lock, reg, cancel, done, runErr
}

// TestSingletonLeaseLossCancelsContext checks that Func's context ends the
// moment the lease is lost, and that the singleton competes again after
// RestartDelay, getting a higher token.
func TestSingletonLeaseLossCancelsContext(t *testing.T) {
	const delay = 50 * time.Millisecond
	calls := make(chan singletonCall, 10)
	ended := make(chan singletonCall, 10)
	s := &Singleton{Name: "consumer", Func: func(ctx context.Context, token uint64) error {
		c := singletonCall{token: token, start: time.Now()}
		calls <- c
		<-ctx.Done()
		c.err = ctx.Err()
		ended <- c
		return nil
	}}
	lock, _, _, _, _ := runFakeSingleton(t, s, delay)
	first := <-calls
	if first.token != 10 {
		t.Fatalf("Func got token %d; want the lease's, 10", first.token)
	}
	lost := time.Now()
	lock.lease(0).lose()
	select {
	case c := <-ended:
		if !errors.Is(c.err, context.Canceled) {
			t.Errorf("Func's context ended with %v; want context.Canceled", c.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Func's context was not cancelled when the lease was lost")
	}
	second := <-calls
	if second.token <= first.token {
		t.Errorf("after the loss, Func got token %d; want one above %d", second.token, first.token)
	}
	if gap := second.start.Sub(lost); gap < delay {
		t.Errorf("the singleton restarted %s after its lease was lost; want at least RestartDelay (%s)", gap, delay)
	}
	lock.mu.Lock()
	defer lock.mu.Unlock()
	if lock.names[0] != "singleton/consumer" {
		t.Errorf("lock name %q; want %q", lock.names[0], "singleton/consumer")
	}
}

// TestSingletonRestartPolicy checks that whenever Func returns (nil, an
// error or a panic) the lock is released at once and Func is called again
// after RestartDelay, under a new lease.
func TestSingletonRestartPolicy(t *testing.T) {
	const delay = 30 * time.Millisecond
	tests := []struct {
		name string
		body func() error
	}{
		{"returns nil", func() error { return nil }},
		{"returns an error", func() error { return errors.New("consumer died") }},
		{"panics", func() error { panic("bug") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := make(chan singletonCall, 10)
			s := &Singleton{Name: "s", Func: func(ctx context.Context, token uint64) error {
				calls <- singletonCall{token: token, start: time.Now()}
				return tt.body()
			}}
			lock, _, _, _, _ := runFakeSingleton(t, s, delay)
			first := <-calls
			select {
			case <-lock.lease(0).unlocked:
			case <-time.After(5 * time.Second):
				t.Fatal("the lock was not released after Func returned")
			}
			second := <-calls
			if second.token <= first.token {
				t.Errorf("restart got token %d; want one above %d", second.token, first.token)
			}
			if gap := second.start.Sub(first.start); gap < delay {
				t.Errorf("restarted %s after the first call; want at least RestartDelay (%s)", gap, delay)
			}
		})
	}
}

// TestSingletonStops checks that Run returns nil, with Func's context
// cancelled and the lock released, when its ctx ends or when the node
// shuts down (its registry of runs closes).
func TestSingletonStops(t *testing.T) {
	for _, how := range []string{"ctx", "node shutdown"} {
		t.Run(how, func(t *testing.T) {
			started := make(chan struct{}, 1)
			s := &Singleton{Name: "s", Func: func(ctx context.Context, token uint64) error {
				started <- struct{}{}
				<-ctx.Done()
				return ctx.Err()
			}}
			lock, reg, cancel, done, runErr := runFakeSingleton(t, s, time.Millisecond)
			<-started
			if how == "ctx" {
				cancel()
			} else {
				reg.Close()
			}
			select {
			case <-done:
				if *runErr != nil {
					t.Errorf("Run returned %v; want nil", *runErr)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return")
			}
			select {
			case <-lock.lease(0).unlocked:
			default:
				t.Error("Run returned without releasing the lock")
			}
			if l := lock.lease(1); l != nil {
				t.Error("Run took the lock again while stopping")
			}
		})
	}
}

// TestSingletonRejectsInvalidFields checks the error for each unusable
// field: it wraps ErrInvalidJob and names the field.
func TestSingletonRejectsInvalidFields(t *testing.T) {
	f := func(context.Context, uint64) error { return nil }
	node := &cluster.Node{} // never used: validation comes first
	tests := []struct {
		name  string
		s     Singleton
		field string
	}{
		{"empty name", Singleton{Cluster: node, Func: f}, "Singleton.Name is empty"},
		{"nil cluster", Singleton{Name: "s", Func: f}, "Singleton.Cluster is nil"},
		{"nil func", Singleton{Name: "s", Cluster: node}, "Singleton.Func is nil"},
		{"negative ttl", Singleton{Name: "s", Cluster: node, Func: f, TTL: -time.Second}, "Singleton.TTL is -1s"},
		{"negative restart delay", Singleton{Name: "s", Cluster: node, Func: f, RestartDelay: -time.Second}, "Singleton.RestartDelay is -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Run(context.Background())
			if !errors.Is(err, ErrInvalidJob) || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Run: %v; want ErrInvalidJob naming %q", err, tt.field)
			}
		})
	}
}
