package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/interlockraft/interlock/fsm"
)

var (
	// ErrLocked means TryLock found the lock held by another lease.
	ErrLocked = errors.New("interlock: lock is held")

	// ErrLeaseLost means the lease is no longer the lock's holder: it
	// expired, was released, or the lock was handed to someone else.
	ErrLeaseLost = errors.New("interlock: lease lost")
)

// LockOption tunes one Lock or TryLock call.
type LockOption func(*lockOptions)

type lockOptions struct {
	keepAlive bool
}

// WithKeepAlive renews the lease in the background every third of its TTL
// until Unlock, for holders that keep the lock as long as they live. If a
// renewal finds the lease lost, Done is closed.
func WithKeepAlive() LockOption { return func(o *lockOptions) { o.keepAlive = true } }

// Lease is one holding of a distributed lock. Its methods are safe for
// concurrent use.
type Lease struct {
	node  *Node
	name  string
	owner string
	token uint64
	ttl   time.Duration

	mu sync.Mutex
	// validUntil is the local time until which this holder may assume it
	// still holds the lock: the send time of the last successful acquire or
	// renew plus the TTL. The leader's stamp is never earlier than that send
	// time, so the lease cannot have expired in leader time before it.
	validUntil time.Time
	timer      *time.Timer
	done       chan struct{}
	closed     bool
	stopKeep   chan struct{}
}

// Name returns the lock's name.
func (l *Lease) Name() string { return l.name }

// Token returns the fencing token: the Raft index of the entry that granted
// this lease. It strictly increases per lock name across holders, leader
// changes and restarts, so a resource that keeps the highest token it has
// seen can refuse writes from a holder whose lease has since been lost.
func (l *Lease) Token() uint64 { return l.token }

// Done is closed when the lease is lost or released.
func (l *Lease) Done() <-chan struct{} { return l.done }

// Renew extends the lease by its TTL. It returns ErrLeaseLost if the lease
// expired or the lock was taken.
func (l *Lease) Renew(ctx context.Context) error {
	sent := time.Now()
	res, err := l.node.lockOp(ctx, fsm.CommandLockRenew, fsm.LockOp{Name: l.name, Owner: l.owner, Node: l.node.cfg.NodeName})
	if err != nil {
		return err
	}
	if res.Status != fsm.LockRenewed {
		l.lost()
		return fmt.Errorf("%w: renew %q: %s", ErrLeaseLost, l.name, res.Status)
	}
	l.extend(sent)
	return nil
}

// Unlock releases the lock. Only this lease's own holding is released: if
// the lease was already lost, it returns ErrLeaseLost and touches nothing.
func (l *Lease) Unlock(ctx context.Context) error {
	// The call ID lets the state machine answer a retried attempt of this
	// call (sent when a reply is lost) as it answered the first.
	op := fsm.LockOp{Name: l.name, Owner: l.owner, Node: l.node.cfg.NodeName, Call: newCallID()}
	res, err := l.node.lockOp(ctx, fsm.CommandLockRelease, op)
	if err != nil {
		return err
	}
	l.lost()
	if res.Status != fsm.LockReleased {
		return fmt.Errorf("%w: unlock %q: %s", ErrLeaseLost, l.name, res.Status)
	}
	return nil
}

func (l *Lease) extend(sent time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if v := sent.Add(l.ttl); v.After(l.validUntil) {
		l.validUntil = v
		l.timer.Reset(time.Until(v))
	}
}

// lost closes Done once and forgets the lease.
func (l *Lease) lost() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.timer.Stop()
	close(l.done)
	if l.stopKeep != nil {
		close(l.stopKeep)
	}
	l.mu.Unlock()
	l.node.locks.forget(l.name, l.owner)
}

func (l *Lease) keepAlive() {
	defer l.node.wg.Done()
	interval := l.ttl / 3
	for {
		select {
		case <-l.stopKeep:
			return
		case <-l.node.shutdownCh:
			return
		case <-time.After(interval):
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.ttl)
		err := l.Renew(ctx)
		cancel()
		if errors.Is(err, ErrLeaseLost) {
			l.node.logger.Warn("lease lost during keep-alive", "lock", l.name, "token", l.token)
			return
		}
		if err != nil {
			l.node.logger.Debug("keep-alive renewal failed, retrying", "lock", l.name, "error", err)
		}
	}
}

// lockTable tracks this node's waiting Lock calls and held leases, and is
// told by the state machine about every lock change.
type lockTable struct {
	mu      sync.Mutex
	waiting map[string]map[string]chan uint64 // name → owner → grant
	held    map[string]map[string]*Lease      // name → owner → lease
	expiry  chan struct{}
}

func newLockTable() *lockTable {
	return &lockTable{
		waiting: make(map[string]map[string]chan uint64),
		held:    make(map[string]map[string]*Lease),
		expiry:  make(chan struct{}, 1),
	}
}

// changed runs on Raft's apply goroutine and must not block.
func (t *lockTable) changed(c fsm.LockChange) {
	t.mu.Lock()
	if ch, ok := t.waiting[c.Name][c.State.Owner]; ok && c.State.Owner != "" {
		select {
		case ch <- c.State.Token:
		default:
		}
	}
	var lost []*Lease
	for owner, l := range t.held[c.Name] {
		// An entry older than the grant, which a lagging node applies
		// after the lease was handed out, says nothing about the lease.
		if owner != c.State.Owner && c.Index >= l.token {
			lost = append(lost, l)
		}
	}
	t.mu.Unlock()
	for _, l := range lost {
		go l.lost() // lost takes t.mu via forget
	}
	select {
	case t.expiry <- struct{}{}:
	default:
	}
}

func (t *lockTable) wait(name, owner string) chan uint64 {
	ch := make(chan uint64, 1)
	t.mu.Lock()
	if t.waiting[name] == nil {
		t.waiting[name] = make(map[string]chan uint64)
	}
	t.waiting[name][owner] = ch
	t.mu.Unlock()
	return ch
}

func (t *lockTable) hold(l *Lease) {
	t.mu.Lock()
	delete(t.waiting[l.name], l.owner)
	if t.held[l.name] == nil {
		t.held[l.name] = make(map[string]*Lease)
	}
	t.held[l.name][l.owner] = l
	t.mu.Unlock()
}

func (t *lockTable) forget(name, owner string) {
	t.mu.Lock()
	delete(t.waiting[name], owner)
	if len(t.waiting[name]) == 0 {
		delete(t.waiting, name)
	}
	delete(t.held[name], owner)
	if len(t.held[name]) == 0 {
		delete(t.held, name)
	}
	t.mu.Unlock()
}

// newCallID returns a random, non-zero call ID.
func newCallID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) | 1
}

func newOwner(node string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return node + "/" + hex.EncodeToString(b[:])
}

// Lock takes the named lock for ttl, blocking until it is granted or ctx
// ends. Waiters are served in FIFO order and woken by the entry that frees
// the lock; nothing polls. If ctx ends first, the request is withdrawn, and
// a grant that raced with the withdrawal is released, so a cancelled Lock
// never leaves the lock held.
func (n *Node) Lock(ctx context.Context, name string, ttl time.Duration, opts ...LockOption) (*Lease, error) {
	return n.acquire(ctx, name, ttl, true, opts)
}

// TryLock takes the named lock for ttl if it is free, and returns ErrLocked
// at once if it is held.
func (n *Node) TryLock(ctx context.Context, name string, ttl time.Duration, opts ...LockOption) (*Lease, error) {
	return n.acquire(ctx, name, ttl, false, opts)
}

func (n *Node) acquire(ctx context.Context, name string, ttl time.Duration, wait bool, opts []LockOption) (*Lease, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: lock name is empty; name the resource the lock guards", ErrInvalidConfig)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("%w: lock %q: ttl is %s; it must be positive, such as 10*time.Second", ErrInvalidConfig, name, ttl)
	}
	var o lockOptions
	for _, opt := range opts {
		opt(&o)
	}
	owner := newOwner(n.cfg.NodeName)
	granted := n.locks.wait(name, owner)
	op := fsm.LockOp{Name: name, Owner: owner, Node: n.cfg.NodeName, TTL: int64(ttl), Wait: wait}
	sent := time.Now()
	res, err := n.lockOp(ctx, fsm.CommandLockAcquire, op)
	if err != nil {
		n.withdraw(name, owner)
		return nil, err
	}
	var token uint64
	switch res.Status {
	case fsm.LockAcquired:
		token = res.Token
	case fsm.LockBusy:
		n.locks.forget(name, owner)
		return nil, fmt.Errorf("%w: %q", ErrLocked, name)
	case fsm.LockQueued:
		select {
		case token = <-granted:
			// The lease started at the handoff entry, which came after
			// sent; counting from sent is conservative.
		case <-ctx.Done():
			n.withdraw(name, owner)
			return nil, fmt.Errorf("lock %q: %w", name, ctx.Err())
		case <-n.shutdownCh:
			n.withdraw(name, owner)
			return nil, ErrShutdown
		}
	default:
		n.locks.forget(name, owner)
		return nil, fmt.Errorf("lock %q: unexpected answer %s", name, res.Status)
	}
	l := &Lease{node: n, name: name, owner: owner, token: token, ttl: ttl, done: make(chan struct{}), validUntil: sent.Add(ttl)}
	l.timer = time.AfterFunc(time.Until(l.validUntil), l.lost)
	n.locks.hold(l)
	// A handoff to another owner may have been applied between the grant
	// and hold; check the state machine once more. Only if this node has
	// applied the granting entry: a follower usually gets the leader's
	// answer first, and every entry it applies after hold is reported to
	// the lease by the notifier.
	applied := n.fsm.AppliedIndex()
	if st, _ := n.fsm.Lock(name); applied >= token && st.Owner != owner {
		l.lost()
	}
	if o.keepAlive {
		l.mu.Lock()
		if !l.closed {
			l.stopKeep = make(chan struct{})
			n.wg.Add(1)
			go l.keepAlive()
		}
		l.mu.Unlock()
	}
	return l, nil
}

// withdraw releases or dequeues an owner whose Lock call is giving up. It
// uses its own timeout because the caller's ctx is usually already done.
func (n *Node) withdraw(name, owner string) {
	n.locks.forget(name, owner)
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ProposeTimeout)
	defer cancel()
	if _, err := n.lockOp(ctx, fsm.CommandLockRelease, fsm.LockOp{Name: name, Owner: owner, Node: n.cfg.NodeName}); err != nil {
		// The lease, if the grant went through, expires after its TTL.
		n.logger.Warn("could not withdraw cancelled lock request", "lock", name, "error", err)
	}
}

func (n *Node) lockOp(ctx context.Context, t fsm.CommandType, op fsm.LockOp) (*fsm.LockResult, error) {
	resp, err := n.submit(ctx, fsm.EncodeLockOp(t, op))
	if err != nil {
		return nil, err
	}
	res, err := fsm.DecodeLockResult(resp)
	if err != nil {
		return nil, fmt.Errorf("decode lock result: %w", err)
	}
	if res.Status == fsm.LockInvalid {
		return nil, fmt.Errorf("%w: lock %q rejected as invalid", ErrInvalidConfig, op.Name)
	}
	return res, nil
}

// expireLeases runs on every node and acts on the leader: when the
// earliest lease that someone is waiting for has run out by this leader's
// clock, it proposes an expiry entry, which hands the lock to the next
// waiter. The state machine decides what expired from the entry's stamp.
func (n *Node) expireLeases() {
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	for {
		wait := time.Second
		if at, ok := n.fsm.NextLockExpiry(); ok && n.IsLeader() {
			wait = time.Until(time.Unix(0, at))
			if wait <= 0 {
				ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ProposeTimeout)
				if _, err := n.propose(ctx, fsm.EncodeLockExpire()); err != nil {
					n.logger.Debug("lease expiry proposal failed", "error", err)
				}
				cancel()
				wait = 10 * time.Millisecond
			}
		}
		timer.Reset(wait)
		select {
		case <-n.shutdownCh:
			return
		case <-n.locks.expiry:
		case <-timer.C:
		}
	}
}
