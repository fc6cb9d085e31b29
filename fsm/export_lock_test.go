package fsm

// LockMemory reports how many records the lock state keeps besides the
// locks themselves: incarnations, remembered release calls, and finished
// owners of the older form. Tests use it to check that they stay bounded.
func (f *FSM) LockMemory() (incarnations, releases, legacy int) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, r := range f.incarnations {
		releases += len(r.releases)
	}
	return len(f.incarnations), releases, len(f.finished) + len(f.finishedOrder)
}
