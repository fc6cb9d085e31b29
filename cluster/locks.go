package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/interlockraft/interlock/fsm"
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
	// time, so the lease cannot have expired in leader time before it. A
	// grant handed over from the wait queue is confirmed by a renewal before
	// Lock returns, so its validity starts at that renewal's send time, not
	// at the long-past acquire (see acquireOnce).
	validUntil time.Time
	timer      *time.Timer
	done       chan struct{}
	closed     bool
	stopKeep   chan struct{}
	// unlocking is set as Unlock begins: the lease's end is then a release, not a loss (metrics).
	unlocking atomic.Bool
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
// expired or the lock was taken, and also if Done is already closed: a
// lease whose local deadline passed is never revived, so a nil error
// always means Done is open.
func (l *Lease) Renew(ctx context.Context) error {
	if l.ended() {
		return fmt.Errorf("%w: renew %q: the lease already ended", ErrLeaseLost, l.name)
	}
	sent := time.Now()
	res, err := l.node.lockOp(ctx, fsm.CommandLockRenew, fsm.LockOp{Name: l.name, Owner: l.owner, Node: l.node.cfg.NodeName})
	if err != nil {
		return err
	}
	if res.Status != fsm.LockRenewed {
		l.lost()
		return fmt.Errorf("%w: renew %q: %s", ErrLeaseLost, l.name, res.Status)
	}
	if !l.extend(sent) {
		return fmt.Errorf("%w: renew %q: the local deadline passed while renewing", ErrLeaseLost, l.name)
	}
	return nil
}

func (l *Lease) ended() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Unlock releases the lock. Only this lease's own holding is released: if
// the lease was already lost, it returns ErrLeaseLost and touches nothing.
func (l *Lease) Unlock(ctx context.Context) error {
	// The call ID lets the state machine answer a retried attempt of this
	// call (sent when a reply is lost) as it answered the first.
	l.unlocking.Store(true)
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

// extend moves the local deadline to sent plus the TTL, and reports false
// if the lease had already ended. Extending and ending both hold l.mu, so
// a lease that extend reports live was live when it returned.
func (l *Lease) extend(sent time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	if v := sent.Add(l.ttl); v.After(l.validUntil) {
		l.validUntil = v
		l.timer.Reset(time.Until(v))
	}
	return true
}

// startTimer arms the local deadline. It holds l.mu so the timer's own
// callback, which takes l.mu, never sees the field unset.
func (l *Lease) startTimer() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.timer = time.AfterFunc(time.Until(l.validUntil), l.deadline)
	}
}

// deadline runs when the local deadline timer fires. A renewal may have
// moved the deadline while the callback waited for l.mu; then the timer
// is already re-armed and the lease stays.
func (l *Lease) deadline() { l.end(true) }

// lost closes Done once and forgets the lease.
func (l *Lease) lost() { l.end(false) }

func (l *Lease) end(onlyIfDue bool) {
	l.mu.Lock()
	if l.closed || (onlyIfDue && time.Now().Before(l.validUntil)) {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.node.metrics.leaseEnded(l.unlocking.Load() || l.node.stopping.Load())
	if l.timer != nil {
		l.timer.Stop()
	}
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
			if l.node.stopping.Load() {
				// Shutdown released this node's locks before it
				// stopped the keep-alives.
				l.node.logger.Debug("lease released by this node's shutdown", "lock", l.name, "token", l.token)
				return
			}
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
	// incarnation names this Node instance in its lock owners, and seq
	// numbers its Lock calls, so the state machine can refuse a late
	// duplicate of a finished request without remembering each one.
	incarnation string
	seq         atomic.Uint64

	mu sync.Mutex
	// waiting delivers to each waiting Lock call the token of its grant,
	// or settledWithoutGrant.
	waiting map[string]map[string]chan uint64 // name → owner → grant
	held    map[string]map[string]*Lease      // name → owner → lease
	expiry  chan struct{}
}

// settledWithoutGrant tells a waiting Lock call that its request ended
// without a grant it can use (a restored snapshot shows it granted and
// gone, or withdrawn). No grant has token 0: tokens are Raft indexes.
const settledWithoutGrant = 0

func newLockTable() *lockTable {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &lockTable{
		incarnation: hex.EncodeToString(b[:]),
		waiting:     make(map[string]map[string]chan uint64),
		held:        make(map[string]map[string]*Lease),
		expiry:      make(chan struct{}, 1),
	}
}

// newOwner names a new Lock call: node/incarnation/sequence.
func (t *lockTable) newOwner(node string) string {
	return node + "/" + t.incarnation + "/" + strconv.FormatUint(t.seq.Add(1), 10)
}

// restored runs on Raft's FSM goroutine after a snapshot was installed,
// before any later entry is applied. The snapshot may have settled requests
// whose entries this node never applied, so their notifications never came:
// each waiting call is told its grant, or that it will get none, or left to
// wait if its request is still queued or not yet applied.
func (n *Node) locksRestored() {
	type waiter struct {
		name, owner string
		ch          chan uint64
	}
	var ws []waiter
	t := n.locks
	t.mu.Lock()
	for name, owners := range t.waiting {
		for owner, ch := range owners {
			ws = append(ws, waiter{name, owner, ch})
		}
	}
	t.mu.Unlock()
	for _, w := range ws {
		status, token := n.fsm.LockOwner(w.name, w.owner)
		switch status {
		case fsm.OwnerHolds:
		case fsm.OwnerSettled:
			token = settledWithoutGrant
		default:
			continue
		}
		select {
		case w.ch <- token:
		default:
		}
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

// Lock takes the named lock for ttl, blocking until it is granted or ctx
// ends. Waiters are served in FIFO order and woken by the entry that frees
// the lock; nothing polls. A grant that reaches a waiter from the queue is
// confirmed with a renewal before Lock returns, so the lease always starts
// with its full ttl; if it was lost before that (its node lagged by more
// than ttl), Lock queues again, and returns an error wrapping ErrLeaseLost
// only if that keeps happening. If ctx ends first, the request is
// withdrawn, and a grant that raced with the withdrawal is released, so a
// cancelled Lock never leaves the lock held.
func (n *Node) Lock(ctx context.Context, name string, ttl time.Duration, opts ...LockOption) (*Lease, error) {
	return n.acquire(ctx, name, ttl, true, opts)
}

// TryLock takes the named lock for ttl if it is free, and returns ErrLocked
// at once if it is held.
func (n *Node) TryLock(ctx context.Context, name string, ttl time.Duration, opts ...LockOption) (*Lease, error) {
	return n.acquire(ctx, name, ttl, false, opts)
}

// maxLockAttempts bounds how many fresh owners one Lock call tries when a
// request settles without a usable grant. Each retry needs a rare event
// (a grant lost before it could be confirmed, or a request reordered far
// behind later ones of this node), so reaching the bound means something
// keeps taking the lock away.
const maxLockAttempts = 5

func (n *Node) acquire(ctx context.Context, name string, ttl time.Duration, wait bool, opts []LockOption) (*Lease, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: lock name is empty; name the resource the lock guards", ErrInvalidLock)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("%w: lock %q: ttl is %s; it must be positive, such as 10*time.Second", ErrInvalidLock, name, ttl)
	}
	began := time.Now()
	var o lockOptions
	for _, opt := range opts {
		opt(&o)
	}
	var l *Lease
	for attempt := 1; l == nil; attempt++ {
		if attempt > maxLockAttempts {
			return nil, fmt.Errorf("lock %q: %w: %d requests in a row ended without a grant that could be confirmed", name, ErrLeaseLost, maxLockAttempts)
		}
		var err error
		if l, err = n.acquireOnce(ctx, name, ttl, wait); err != nil {
			return nil, err
		}
		if l == nil {
			n.logger.Debug("lock request ended without a usable grant, retrying with a new owner", "lock", name, "attempt", attempt)
		}
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
	n.metrics.lockGranted(began)
	return l, nil
}

// acquireOnce makes one request under a fresh owner. It returns a nil lease
// and nil error when the request ended without a grant the caller can use
// and a new request should be made.
func (n *Node) acquireOnce(ctx context.Context, name string, ttl time.Duration, wait bool) (*Lease, error) {
	owner := n.locks.newOwner(n.cfg.NodeName)
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
	case fsm.LockLost:
		// Refused as a duplicate: the request arrived after a later one
		// of this node had moved its window on. A fresh owner is newer.
		n.locks.forget(name, owner)
		return nil, nil
	case fsm.LockQueued:
		select {
		case token = <-granted:
			if token == settledWithoutGrant {
				n.locks.forget(name, owner)
				return nil, nil
			}
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
	// The leader started the lease at the granting entry's stamp, but this
	// node cannot tell how long ago, in its own clock, that was: it may
	// have applied a handoff entry long after the leader wrote it. Only
	// the send time of a request that the leader answered is known to
	// precede the stamp. For a queued grant, or an acquire whose answer
	// came back so late that little of the TTL is left, confirm with a
	// renewal: its send time starts a full TTL, in leader time too, since
	// the renewal's own stamp extends the lease.
	if res.Status == fsm.LockQueued || time.Until(sent.Add(ttl)) < ttl/2 {
		sent = time.Now()
		res, err := n.lockOp(ctx, fsm.CommandLockRenew, fsm.LockOp{Name: name, Owner: owner, Node: n.cfg.NodeName})
		if err != nil {
			n.withdraw(name, owner)
			return nil, fmt.Errorf("lock %q: confirm grant: %w", name, err)
		}
		if res.Status != fsm.LockRenewed || res.Token != token {
			// The lease ended before it could be confirmed.
			n.locks.forget(name, owner)
			return nil, nil
		}
	}
	l := &Lease{node: n, name: name, owner: owner, token: token, ttl: ttl, done: make(chan struct{}), validUntil: sent.Add(ttl)}
	n.locks.hold(l)
	l.startTimer()
	// A handoff to another owner may have been applied between the grant
	// and hold; check the state machine once more. Only if this node has
	// applied the granting entry: a follower usually gets the leader's
	// answer first, and every entry it applies after hold is reported to
	// the lease by the notifier.
	applied := n.fsm.AppliedIndex()
	if st, _ := n.fsm.Lock(name); applied >= token && st.Owner != owner {
		l.lost()
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
		return nil, fmt.Errorf("%w: lock %q rejected as invalid by the cluster; check that every replica runs a compatible version", ErrInvalidLock, op.Name)
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
