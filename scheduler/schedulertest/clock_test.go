package schedulertest_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/interlockraft/interlock/scheduler/schedulertest"
)

// TestClockFiresInOrder: Advance fires due timers in due order, at their
// due times, skips stopped ones and leaves later ones pending; Jump fires
// what fell due at the new time.
func TestClockFiresInOrder(t *testing.T) {
	t0 := time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)
	clk := schedulertest.NewClock(t0)
	var mu sync.Mutex
	var fired []string
	var wg sync.WaitGroup
	timer := func(name string, d time.Duration) func() bool {
		wg.Add(1)
		return clk.AfterFunc(d, func() {
			defer wg.Done()
			mu.Lock()
			fired = append(fired, name)
			mu.Unlock()
		})
	}
	timer("b", 2*time.Hour)
	timer("a", time.Hour)
	stopC := timer("c", 3*time.Hour)
	timer("d", 5*time.Hour)
	if !stopC() {
		t.Fatal("stop of a pending timer returned false")
	}
	wg.Done() // c never fires
	if at, ok := clk.Next(); !ok || !at.Equal(t0.Add(time.Hour)) {
		t.Fatalf("Next = %s, %v; want the earliest timer, t0+1h", at, ok)
	}
	clk.Advance(4 * time.Hour)
	if now := clk.Now(); !now.Equal(t0.Add(4 * time.Hour)) {
		t.Errorf("Now = %s after Advance(4h); want t0+4h", now)
	}
	if stopC() {
		t.Error("a second stop returned true")
	}
	if at, ok := clk.Next(); !ok || !at.Equal(t0.Add(5*time.Hour)) {
		t.Errorf("Next = %s, %v; want d pending at t0+5h", at, ok)
	}
	waitFired := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			got := len(fired)
			mu.Unlock()
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d timers fired; want %d", got, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFired(2) // a and b, in their own goroutines
	clk.Jump(time.Hour)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(fired) != 3 || !slices.Contains(fired, "a") || !slices.Contains(fired, "b") || fired[2] != "d" {
		t.Errorf("fired %v; want a and b, then d, and never c", fired)
	}
}

func TestClockAdvanceToNext(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := schedulertest.NewClock(t0)
	done := make(chan struct{})
	go func() {
		clk.AfterFunc(time.Minute, func() { close(done) })
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	at, err := clk.AdvanceToNext(ctx)
	if err != nil || !at.Equal(t0.Add(time.Minute)) {
		t.Fatalf("AdvanceToNext = %s, %v; want t0+1m", at, err)
	}
	<-done
	short, cancelShort := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancelShort()
	if _, err := clk.AdvanceToNext(short); err == nil {
		t.Error("AdvanceToNext with no timer returned no error when its context ended")
	}
}
