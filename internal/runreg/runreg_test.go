package runreg

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func run(job string, at int64) Run { return Run{Key: Key{Job: job, At: at}} }

func TestBeginRunsEachInstantOnce(t *testing.T) {
	r := New()
	end, ok := r.Begin(run("j", 10), nil)
	if !ok {
		t.Fatal("first run refused")
	}
	if _, ok := r.Begin(run("j", 10), nil); ok {
		t.Fatal("the same instant started twice while running")
	}
	end()
	end() // idempotent
	if _, ok := r.Begin(run("j", 10), nil); ok {
		t.Fatal("instant 10 started again after it had run")
	}
	if _, ok := r.Begin(run("other", 10), nil); !ok {
		t.Fatal("another job at the same instant refused")
	}
	if _, ok := r.Begin(run("j", 11), nil); !ok {
		t.Fatal("a later instant refused")
	}
	// The cluster grants an instant after a later one when its claim
	// committed second (fsm.CommandClaimAnyOrder).
	if _, ok := r.Begin(run("j", 9), nil); !ok {
		t.Fatal("an earlier instant that never ran here refused")
	}
	if _, ok := r.Begin(run("j", 9), nil); ok {
		t.Fatal("instant 9 started twice")
	}
}

// TestBeginForgetsOnlyWhatCannotBeGranted starts more instants than the
// registry keeps, out of order, and checks that every one started stays
// refused and that an instant older than all kept is refused too: the
// state machine cannot grant it.
func TestBeginForgetsOnlyWhatCannotBeGranted(t *testing.T) {
	r := New()
	order := []int64{10, 12, 11, 14, 13, 20, 16, 15, 18, 17, 19}
	for _, at := range order {
		if _, ok := r.Begin(run("j", at), nil); !ok {
			t.Fatalf("instant %d refused before it ran", at)
		}
	}
	for _, at := range order {
		if _, ok := r.Begin(run("j", at), nil); ok {
			t.Fatalf("instant %d started twice", at)
		}
	}
	// Kept: 20 down to 15; 14 is the floor.
	for _, tt := range []struct {
		at int64
		ok bool
	}{{9, false}, {14, false}, {21, true}, {8, false}} {
		if _, ok := r.Begin(run("j", tt.at), nil); ok != tt.ok {
			t.Errorf("Begin(instant %d) = %v, want %v", tt.at, ok, tt.ok)
		}
	}
}

func TestHoldIsExclusiveUntilFreedOrLeft(t *testing.T) {
	r := New()
	a, _ := r.Join(nil)
	b, _ := r.Join(nil)
	if err := a.Hold("j"); err != nil {
		t.Fatal(err)
	}
	if err := a.Hold("j"); err != nil {
		t.Fatalf("holding a name again: %v", err)
	}
	if err := b.Hold("j"); !errors.Is(err, ErrHeld) {
		t.Fatalf("second owner's Hold = %v, want ErrHeld", err)
	}
	b.Free("j") // not b's: no effect
	if err := b.Hold("j"); !errors.Is(err, ErrHeld) {
		t.Fatalf("Free by a non-holder freed the name: %v", err)
	}
	a.Free("j")
	if err := b.Hold("j"); err != nil {
		t.Fatalf("Hold after Free: %v", err)
	}
	b.Leave()
	if err := a.Hold("j"); err != nil {
		t.Fatalf("Hold after Leave: %v", err)
	}
}

func TestCloseStopsOwnersCancelsRunsAndWaitBounds(t *testing.T) {
	r := New()
	stopped := make(chan struct{})
	if _, err := r.Join(func() { close(stopped) }); err != nil {
		t.Fatal(err)
	}
	cancelled := make(chan struct{})
	endA, _ := r.Begin(Run{Key: Key{Job: "a", At: 1}, Tick: 1, Token: 7}, func() { close(cancelled) })
	endB, _ := r.Begin(run("b", 1), nil)
	endB()
	r.Close()
	r.Close()
	for name, ch := range map[string]chan struct{}{"owner stop": stopped, "run cancel": cancelled} {
		select {
		case <-ch:
		default:
			t.Fatalf("Close did not call the %s", name)
		}
	}
	if _, err := r.Join(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Join after Close = %v, want ErrClosed", err)
	}
	if _, ok := r.Begin(run("c", 1), nil); ok {
		t.Fatal("Begin after Close started a run")
	}
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	left := r.Wait(short)
	if len(left) != 1 || left[0].Job != "a" || left[0].Token != 7 {
		t.Fatalf("Wait left %+v, want run a with token 7", left)
	}
	go func() {
		time.Sleep(10 * time.Millisecond) // the run returns a moment later
		endA()
	}()
	long, cancelLong := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelLong()
	if left := r.Wait(long); len(left) != 0 {
		t.Fatalf("Wait returned %+v after every run ended", left)
	}
}

// TestHeldListsNamesUntilFreedOrClosed: Held is what the node registers
// again after the cluster released it, so it must drop a freed name at
// once and list nothing once the registry closes.
func TestHeldListsNamesUntilFreedOrClosed(t *testing.T) {
	r := New()
	a, _ := r.Join(nil)
	b, _ := r.Join(nil)
	for _, h := range []struct {
		o   *Owner
		job string
	}{{a, "y"}, {a, "x"}, {b, "z"}} {
		if err := h.o.Hold(h.job); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.Held(); !slices.Equal(got, []string{"x", "y", "z"}) {
		t.Fatalf("Held = %v, want [x y z]", got)
	}
	a.Free("y")
	b.Leave()
	if got := r.Held(); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("after Free and Leave, Held = %v, want [x]", got)
	}
	r.Close()
	if got := r.Held(); len(got) != 0 {
		t.Fatalf("after Close, Held = %v, want none", got)
	}
}

// TestHeldLeavesOutUnlistedNames checks that a name held with HoldUnlisted
// (a job whose RequireTags exclude the node) is still taken, so no second
// Scheduler can hold it, but is never listed by Held, so the node does not
// register it with the cluster; Hold lists it again.
func TestHeldLeavesOutUnlistedNames(t *testing.T) {
	r := New()
	a, _ := r.Join(nil)
	b, _ := r.Join(nil)
	if err := a.HoldUnlisted("tagged"); err != nil {
		t.Fatal(err)
	}
	if err := a.Hold("plain"); err != nil {
		t.Fatal(err)
	}
	if got := r.Held(); !slices.Equal(got, []string{"plain"}) {
		t.Fatalf("Held = %v, want [plain]", got)
	}
	if err := b.HoldUnlisted("tagged"); !errors.Is(err, ErrHeld) {
		t.Fatalf("second owner's HoldUnlisted = %v, want ErrHeld", err)
	}
	if err := a.Hold("tagged"); err != nil {
		t.Fatal(err)
	}
	if got := r.Held(); !slices.Equal(got, []string{"plain", "tagged"}) {
		t.Fatalf("after Hold, Held = %v, want [plain tagged]", got)
	}
	a.Free("tagged")
	if err := b.HoldUnlisted("tagged"); err != nil {
		t.Fatal(err)
	}
	b.Leave()
	if err := a.Hold("tagged"); err != nil {
		t.Fatal(err)
	}
	if got := r.Held(); !slices.Equal(got, []string{"plain", "tagged"}) {
		t.Fatalf("Held = %v, want [plain tagged]", got)
	}
}
