package scheduler

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/fsm"
)

// leaserFunc adapts a function to runLeaser.
type leaserFunc func(ctx context.Context, renew, done []fsm.RunRef) ([]bool, error)

func (f leaserFunc) UpdateRuns(ctx context.Context, renew, done []fsm.RunRef) ([]bool, error) {
	return f(ctx, renew, done)
}

// keeperWith runs a lease keeper over f until the test ends.
func keeperWith(t *testing.T, f leaserFunc) *leaseKeeper {
	k := newLeaseKeeper(f, hclog.NewNullLogger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		k.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return k
}

// A run whose renewals cannot get through (failing, or stuck in flight) is
// cancelled when its lease expires by the local clock (the claim's send
// time plus the TTL), less the small guard. It is never cancelled earlier.
func TestRunLeaseLocalDeadline(t *testing.T) {
	const ttl = 300 * time.Millisecond
	for name, f := range map[string]leaserFunc{
		"renewals fail": func(context.Context, []fsm.RunRef, []fsm.RunRef) ([]bool, error) {
			return nil, errors.New("no leader")
		},
		"renewal stuck": func(ctx context.Context, _, _ []fsm.RunRef) ([]bool, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		},
	} {
		t.Run(name, func(t *testing.T) {
			k := keeperWith(t, f)
			cancelled := make(chan time.Time, 1)
			sent := time.Now().Add(-ttl / 2) // the claim was sent a while ago
			ref := fsm.RunRef{Job: "j", Tick: 1}
			k.begin(ref, ttl, sent, func() { cancelled <- time.Now() })
			defer k.end(ref)
			select {
			case at := <-cancelled:
				due := sent.Add(ttl - cancelGuard(ttl))
				if at.Before(due) {
					t.Fatalf("cancelled %s before the local deadline less its guard", due.Sub(at))
				}
				// Slack for waking the timer on a busy machine.
				if late := at.Sub(sent.Add(ttl)); late > 100*time.Millisecond {
					t.Errorf("cancelled %s after the local deadline", late)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the run was never cancelled although no renewal held")
			}
		})
	}
}

// Renewals that hold push the local deadline on: the run is not cancelled
// while they go through, and is once they stop.
func TestRunLeaseRenewalsExtendTheLocalDeadline(t *testing.T) {
	const ttl = 150 * time.Millisecond
	var failing atomic.Bool
	k := keeperWith(t, func(_ context.Context, renew, _ []fsm.RunRef) ([]bool, error) {
		if failing.Load() {
			return nil, errors.New("partitioned")
		}
		held := make([]bool, len(renew))
		for i := range held {
			held[i] = true
		}
		return held, nil
	})
	var cancelledAt atomic.Int64
	ref := fsm.RunRef{Job: "j", Tick: 1}
	k.begin(ref, ttl, time.Now(), func() { cancelledAt.Store(time.Now().UnixNano()) })
	defer k.end(ref)
	// Four lease lengths with renewals holding.
	deadline := time.Now().Add(4 * ttl)
	for time.Now().Before(deadline) {
		if cancelledAt.Load() != 0 {
			t.Fatal("a run whose renewals hold was cancelled")
		}
		time.Sleep(5 * time.Millisecond)
	}
	failedFrom := time.Now()
	failing.Store(true)
	eventually(t, 10*time.Second, func() bool { return cancelledAt.Load() != 0 }, "the run was not cancelled after renewals stopped holding")
	// The last renewal that held was sent before failedFrom.
	if late := time.Unix(0, cancelledAt.Load()).Sub(failedFrom.Add(ttl)); late > 100*time.Millisecond {
		t.Errorf("cancelled %s after the last possible local deadline", late)
	}
}
