package fsm

import (
	"fmt"
	"slices"
	"time"
)

// CommandType says what a log entry asks the state machine to do.
type CommandType uint8

const (
	// CommandClaim asks for grants of (job, instant) pairs to one node. A
	// job's instants are granted in order: once a later one is granted, an
	// earlier one is refused.
	CommandClaim CommandType = 1
	// CommandRegister adds or removes a node's registered jobs.
	CommandRegister CommandType = 2
	// CommandRuns renews or ends run leases of one node's running jobs.
	CommandRuns CommandType = 8
	// CommandClaimAnyOrder is CommandClaim whose claims may also be granted
	// for an instant before the job's latest grant, if the job's record
	// shows that instant was never granted (ProtocolAnyOrder). Claims of
	// consecutive ticks made by different nodes can commit out of order,
	// and a tick whose claim came second would otherwise run nowhere.
	CommandClaimAnyOrder CommandType = 12
)

// String returns the command type's name, for logs.
func (t CommandType) String() string {
	switch t {
	case CommandClaim:
		return "claim"
	case CommandClaimAnyOrder:
		return "claim-any-order"
	case CommandRegister:
		return "register"
	case CommandRuns:
		return "runs"
	case CommandLockAcquire:
		return "lock-acquire"
	case CommandLockRenew:
		return "lock-renew"
	case CommandLockRelease:
		return "lock-release"
	case CommandLockExpire:
		return "lock-expire"
	case CommandNodeRelease:
		return "node-release"
	case CommandBatch:
		return "batch"
	case CommandPause:
		return "pause"
	case CommandRunNow:
		return "run-now"
	default:
		return fmt.Sprintf("command(%d)", uint8(t))
	}
}

// encodingVersion is the first byte of every entry and snapshot. Bump it
// only together with a decoder for the old version.
const encodingVersion = 1

// headerLen is version (1) + type (1) + leader time (8, fixed width so the
// leader can stamp it in place without re-encoding the body).
const headerLen = 10

// Header is the part of every entry that precedes the command body.
type Header struct {
	Type CommandType
	// Now is the leader's wall clock, in Unix nanoseconds, when it proposed
	// the entry. It is the only notion of time the state machine has.
	Now int64
}

// Stamp writes the leader's clock reading into an encoded command in place.
// Only the leader calls it, right before raft.Apply, so every replica sees the
// same time for the same entry.
func Stamp(cmd []byte, now time.Time) error {
	if len(cmd) < headerLen {
		return fmt.Errorf("%w: entry shorter than its header", ErrMalformed)
	}
	if cmd[0] != encodingVersion {
		return fmt.Errorf("%w: %d", ErrUnsupportedVersion, cmd[0])
	}
	e := encoder{buf: cmd[:2]}
	e.fixed64(now.UnixNano())
	return nil
}

// PeekHeader decodes the header of an encoded command.
func PeekHeader(cmd []byte) (Header, error) {
	d := decoder{buf: cmd}
	return readHeader(&d)
}

func readHeader(d *decoder) (Header, error) {
	v := d.byte()
	t := CommandType(d.byte())
	now := d.fixed64()
	if d.err != nil {
		return Header{}, d.err
	}
	if v != encodingVersion {
		return Header{}, fmt.Errorf("%w: %d", ErrUnsupportedVersion, v)
	}
	return Header{Type: t, Now: now}, nil
}

func newEncoder(t CommandType, sizeHint int) *encoder {
	e := &encoder{buf: make([]byte, 0, headerLen+sizeHint)}
	e.byte(encodingVersion)
	e.byte(byte(t))
	e.fixed64(0) // stamped by the leader
	return e
}

// Claim asks for one tick of a job, named by its scheduled instant At. The
// instant, not the index, is the tick's identity: replicas configured with
// different intervals name one instant with different indexes.
type Claim struct {
	Job string
	// Tick is the tick's index, At / interval. The state machine does not
	// compare it; it names the run in run lease updates (RunRef) and logs.
	Tick int64
	// At is the tick's scheduled instant in Unix nanoseconds, the key of
	// the grant: an instant is granted at most once per job.
	At int64
	// Deadline is the latest leader time, in Unix nanoseconds, at which the
	// claim may still be granted. A claim that arrives later, say from a node
	// that was paused, is refused instead of starting a run too late.
	Deadline int64
	// Exclusive asks that the tick be refused while the job's previous run
	// still holds its run lease, on any node.
	Exclusive bool
	// LeaseTTL is the run lease granted with the tick, in nanoseconds. The
	// holder renews it while the run goes on and releases it when done.
	LeaseTTL int64
}

// ClaimBatch is every claim one node makes for one instant. Packing them
// into one entry turns thousands of fsyncs into one.
type ClaimBatch struct {
	Node   string
	Claims []Claim
	// AnyOrder encodes the batch as CommandClaimAnyOrder, whose claims may
	// be granted after a later instant of their job. Set it only once
	// every server speaks ProtocolAnyOrder, and not for run-now requests,
	// for which a later tick granted first stands in.
	AnyOrder bool
}

// EncodeClaims encodes a claim batch as a log entry.
func EncodeClaims(b ClaimBatch) []byte {
	size := len(b.Node) + 4
	for _, c := range b.Claims {
		size += len(c.Job) + 24
	}
	t := CommandClaim
	if b.AnyOrder {
		t = CommandClaimAnyOrder
	}
	e := newEncoder(t, size)
	e.string(b.Node)
	e.uvarint(uint64(len(b.Claims)))
	for _, c := range b.Claims {
		e.string(c.Job)
		e.varint(c.Tick)
		e.varint(c.At)
		e.varint(c.Deadline)
		e.bool(c.Exclusive)
		e.varint(c.LeaseTTL)
	}
	return e.buf
}

// ClaimInOrder turns an encoded CommandClaimAnyOrder entry into a
// CommandClaim entry with the same claims, in place. Their bodies are the
// same; only the rule the state machine grants them by differs.
func ClaimInOrder(cmd []byte) error {
	h, err := PeekHeader(cmd)
	if err != nil {
		return err
	}
	if h.Type != CommandClaimAnyOrder {
		return fmt.Errorf("%w: entry is a %s, not a %s", ErrMalformed, h.Type, CommandClaimAnyOrder)
	}
	cmd[1] = byte(CommandClaim)
	return nil
}

func decodeClaims(d *decoder) (ClaimBatch, error) {
	var b ClaimBatch
	b.Node = d.string()
	n := d.count(4)
	b.Claims = make([]Claim, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		var c Claim
		c.Job = d.string()
		c.Tick = d.varint()
		c.At = d.varint()
		c.Deadline = d.varint()
		c.Exclusive = d.bool()
		c.LeaseTTL = d.varint()
		b.Claims = append(b.Claims, c)
	}
	return b, d.err
}

// claimView is a decoded Claim whose job name is a view into the entry
// rather than a copy, for applying the entry without allocating per claim.
// It must not outlive the entry's bytes.
type claimView struct {
	job                []byte
	tick, at, deadline int64
	exclusive          bool
	leaseTTL           int64
}

// decodeClaimViews decodes what decodeClaims does, into buf, with each job
// name a view into d's buffer.
func decodeClaimViews(d *decoder, buf []claimView) (string, []claimView, error) {
	node := d.string()
	n := d.count(4)
	buf = slices.Grow(buf[:0], n)
	for i := 0; i < n && d.err == nil; i++ {
		buf = append(buf, claimView{
			job:       d.bytes(),
			tick:      d.varint(),
			at:        d.varint(),
			deadline:  d.varint(),
			exclusive: d.bool(),
			leaseTTL:  d.varint(),
		})
	}
	return node, buf, d.err
}

// Registration changes which jobs a node offers to run. Reset drops every
// job the node registered before, which a restarted node does so that jobs
// it no longer has stop being routed to it.
type Registration struct {
	Node   string
	Reset  bool
	Add    []string
	Remove []string
}

// EncodeRegistration encodes a registration as a log entry.
func EncodeRegistration(r Registration) []byte {
	e := newEncoder(CommandRegister, 16+len(r.Node))
	e.string(r.Node)
	e.bool(r.Reset)
	e.uvarint(uint64(len(r.Add)))
	for _, j := range r.Add {
		e.string(j)
	}
	e.uvarint(uint64(len(r.Remove)))
	for _, j := range r.Remove {
		e.string(j)
	}
	return e.buf
}

func decodeRegistration(d *decoder) (Registration, error) {
	var r Registration
	r.Node = d.string()
	r.Reset = d.bool()
	n := d.count(1)
	for i := 0; i < n && d.err == nil; i++ {
		r.Add = append(r.Add, d.string())
	}
	n = d.count(1)
	for i := 0; i < n && d.err == nil; i++ {
		r.Remove = append(r.Remove, d.string())
	}
	return r, d.err
}

// RunRef names one run: a job's granted tick, by the index its claim
// carried. It matches only the job's latest grant, held by the sender.
type RunRef struct {
	Job  string
	Tick int64
}

// RunUpdate renews the run leases of Renew and ends those of Done, all
// held by Node, and adds Finished to the jobs' histories. A node batches
// these for all its running jobs.
type RunUpdate struct {
	Node     string
	Renew    []RunRef
	Done     []RunRef
	Finished []Finished
}

// EncodeRunUpdate encodes a run lease update. Finished runs follow the
// lease lists, and only when there are any, so an update without them is
// byte for byte what older versions wrote, and older versions, which stop
// reading after Done, apply the leases of a newer update and skip the
// history.
func EncodeRunUpdate(u RunUpdate) []byte {
	e := newEncoder(CommandRuns, 16+len(u.Node)+24*(len(u.Renew)+len(u.Done))+64*len(u.Finished))
	e.string(u.Node)
	for _, list := range [][]RunRef{u.Renew, u.Done} {
		e.uvarint(uint64(len(list)))
		for _, r := range list {
			e.string(r.Job)
			e.varint(r.Tick)
		}
	}
	if len(u.Finished) > 0 {
		e.uvarint(uint64(len(u.Finished)))
		for _, fin := range u.Finished {
			e.string(fin.Job)
			encodeHistoryEntry(e, fin.Entry)
		}
	}
	return e.buf
}

func decodeRunUpdate(d *decoder) (RunUpdate, error) {
	var u RunUpdate
	u.Node = d.string()
	for _, list := range []*[]RunRef{&u.Renew, &u.Done} {
		n := d.count(2)
		for i := 0; i < n && d.err == nil; i++ {
			*list = append(*list, RunRef{Job: d.string(), Tick: d.varint()})
		}
	}
	if d.err == nil && len(d.buf) > 0 {
		n := d.count(1 + historyEntryMin)
		for i := 0; i < n && d.err == nil; i++ {
			u.Finished = append(u.Finished, Finished{Job: d.string(), Entry: decodeHistoryEntry(d)})
		}
	}
	return u, d.err
}

// RunUpdateResult lists, in Renew's order, whether each renewal held: false
// means the run lease was already lost.
type RunUpdateResult struct {
	Renewed []bool
}

// EncodeRunUpdateResult encodes a run update result.
func EncodeRunUpdateResult(r *RunUpdateResult) []byte {
	e := &encoder{}
	e.uvarint(uint64(len(r.Renewed)))
	for _, ok := range r.Renewed {
		e.bool(ok)
	}
	return e.buf
}

// DecodeRunUpdateResult reverses EncodeRunUpdateResult.
func DecodeRunUpdateResult(b []byte) (*RunUpdateResult, error) {
	d := &decoder{buf: b}
	n := d.count(1)
	r := &RunUpdateResult{Renewed: make([]bool, 0, n)}
	for i := 0; i < n && d.err == nil; i++ {
		r.Renewed = append(r.Renewed, d.bool())
	}
	return r, d.err
}
