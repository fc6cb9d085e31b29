package seam

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// known and other are two types a hook may or may not recognise.
type known struct{ Coordinator }
type other struct{}

// Of asks each hook in turn: a hook's own type gets its Coordinator (nil
// for a nil pointer, still ok), and a type no hook knows is refused.
func TestOfAsksEachHook(t *testing.T) {
	saved := hooks
	t.Cleanup(func() { hooks = saved })
	hooks = nil
	if _, ok := Of(&known{}); ok {
		t.Fatal("Of recognised a value with no hook registered")
	}
	want := &known{}
	Provide(func(x any) (Coordinator, bool) { return nil, false })
	Provide(func(x any) (Coordinator, bool) {
		k, ok := x.(*known)
		if !ok {
			return nil, false
		}
		if k == nil {
			return nil, true
		}
		return k, true
	})
	tests := []struct {
		name   string
		x      any
		want   Coordinator
		wantOK bool
	}{
		{"its type", want, want, true},
		{"nil pointer of its type", (*known)(nil), nil, true},
		{"another type", other{}, nil, false},
		{"nil", nil, nil, false},
	}
	for _, tt := range tests {
		got, ok := Of(tt.x)
		if ok != tt.wantOK || got != tt.want {
			t.Errorf("%s: Of = (%v, %t), want (%v, %t)", tt.name, got, ok, tt.want, tt.wantOK)
		}
	}
}

// TestProvideForRecognisesItsType checks the typed hook: a *T gets its
// wrapped Coordinator, a nil *T means no cluster, and any other type is left
// to other hooks.
func TestProvideForRecognisesItsType(t *testing.T) {
	type node struct{}
	ProvideFor(func(n *node) Coordinator { return nil })
	if c, ok := Of((*node)(nil)); !ok || c != nil {
		t.Errorf("Of(nil *node) = %v, %v; want nil, true", c, ok)
	}
	type other struct{}
	if _, ok := Of(&other{}); ok {
		t.Error("Of(*other) was recognised by the *node hook")
	}
	called := false
	type node2 struct{}
	ProvideFor(func(*node2) Coordinator { called = true; return nil })
	if _, ok := Of(&node2{}); !ok || !called {
		t.Errorf("Of(*node2) ok=%v, wrap called=%v; want both true", ok, called)
	}
}
