package fsm

import (
	"slices"
	"strings"
)

// NamedLock is one lock's state with its name, for listings.
type NamedLock struct {
	Name string
	LockState
}

// Locks returns every lock that is held or has waiters, sorted by name,
// as copies the caller may keep. Status pages list them; nothing decides
// by it. Safe for concurrent use with Apply.
func (f *FSM) Locks() []NamedLock {
	f.mu.RLock()
	out := make([]NamedLock, 0, len(f.locks))
	for name, st := range f.locks {
		if st.Owner == "" && len(st.Waiters) == 0 {
			continue
		}
		cp := *st
		cp.Waiters = slices.Clone(st.Waiters)
		out = append(out, NamedLock{Name: name, LockState: cp})
	}
	f.mu.RUnlock()
	slices.SortFunc(out, func(a, b NamedLock) int { return strings.Compare(a.Name, b.Name) })
	return out
}
