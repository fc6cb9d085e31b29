// Package schedulertest provides a fake cluster for testing jobs that run
// on a scheduler.Scheduler or a scheduler.GoInterval, without starting a
// real cluster node.
//
// A *Cluster stands where a *cluster.Node would: pass it as
// scheduler.Options.Cluster or GoInterval.Cluster. It grants ticks
// in-process through the same state machine a real cluster replicates, so
// runs get fencing tokens that increase, a SkipIfRunning job's run holds a
// run lease, and a tick is granted at most once. A test can script what a
// real cluster may do to the job: grant ticks to another replica, fail
// claims as a cluster without quorum would, or take a run's lease away.
// It records every grant, so a test can wait for runs and check them.
package schedulertest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/fsm"
	"github.com/interlockraft/interlock/internal/runreg"
	"github.com/interlockraft/interlock/internal/seam"
)

// The scheduler reaches a *Cluster's plumbing through the same internal
// seam as a real node's, so only this package and cluster can stand behind
// scheduler.Cluster.
func init() { seam.ProvideFor(func(c *Cluster) seam.Coordinator { return plumbing{c} }) }

// Grant is one tick the cluster granted.
type Grant struct {
	// Job and Tick name the tick; At is its scheduled instant.
	Job  string
	Tick int64
	At   time.Time
	// Node is the node it was granted to: the Cluster's own name, or the
	// other node named in GrantTo.
	Node string
	// Token is the grant's fencing token, greater than every earlier one.
	Token uint64
}

// Option configures a Cluster.
type Option func(*Cluster)

// WithLogger sets the logger a Scheduler uses by default when its
// Options.Logger is nil. The default logs at Info to stderr, as a
// Scheduler without a cluster does.
func WithLogger(l hclog.Logger) Option {
	return func(c *Cluster) { c.logger = l }
}

// WithTags sets the node's tags, as cluster.Config.Tags does for a real
// node: a job whose RequireTags they do not satisfy is never run.
func WithTags(tags map[string]string) Option {
	return func(c *Cluster) { c.tags = maps.Clone(tags) }
}

// Cluster is a fake cluster of one node, for tests of jobs. All methods are
// safe for concurrent use, also while Schedulers use the Cluster.
type Cluster struct {
	name   string
	logger hclog.Logger
	tags   map[string]string
	// runs is the node's registry of runs, shared by every Scheduler
	// that uses this Cluster, as a real node's is.
	runs *runreg.Registry

	mu    sync.Mutex
	state *fsm.FSM
	index uint64
	// script holds the outcomes scripted for each job's next claims, in
	// order.
	script map[string][]outcome
	// lose marks jobs whose current run lease is to be reported lost.
	lose   map[string]bool
	grants []Grant
	// granted is closed and replaced on every grant.
	granted chan struct{}
}

// outcome is one scripted answer to a claim.
type outcome struct {
	// to is the node the tick goes to instead; "" with err.
	to  string
	err error
}

// NewCluster returns a fake cluster whose node is called name, as
// cluster.Config.NodeName names a real one; it appears in Run.Node and in
// Grant.Node. Until a test scripts otherwise, every claim of the node is
// granted.
func NewCluster(name string, opts ...Option) *Cluster {
	c := &Cluster{
		name:    name,
		runs:    runreg.New(),
		state:   fsm.New(hclog.NewNullLogger()),
		script:  make(map[string][]outcome),
		lose:    make(map[string]bool),
		granted: make(chan struct{}),
	}
	for _, o := range opts {
		o(c)
	}
	if c.logger == nil {
		c.logger = hclog.New(&hclog.LoggerOptions{Name: "interlock", Level: hclog.Info, Output: os.Stderr})
	}
	c.logger = c.logger.With("node", name)
	return c
}

// Name returns the node's name.
func (c *Cluster) Name() string { return c.name }

// GrantTo makes the next n claims of job granted to the node named other
// instead, as when another replica wins them: the Scheduler on this
// Cluster does not run those ticks. other's run of each tick ends at once,
// so it holds no run lease that would keep later ticks from this node.
func (c *Cluster) GrantTo(job, other string, n int) {
	c.push(job, outcome{to: other}, n)
}

// FailClaims makes the next n claims of job fail with err, without
// granting anything, as when the cluster has no quorum until the tick's
// start deadline. The Scheduler treats the outcome as unknown: for up to a
// second it looks for the grant, and if no grant of that tick or a later
// one shows up, it counts a failed claim and logs the missed tick at Warn
// with err. Claims of ticks that fall on the same instant share one batch,
// as they share one Raft entry on a real node, so a failure fails every
// job's claim in the batch.
func (c *Cluster) FailClaims(job string, n int, err error) {
	if err == nil {
		err = errors.New("schedulertest: claim failed")
	}
	c.push(job, outcome{err: err}, n)
}

func (c *Cluster) push(job string, o outcome, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for range n {
		c.script[job] = append(c.script[job], o)
	}
}

// LoseLease takes away the run lease of job's run in progress, as when the
// node was cut off from the cluster for longer than the lease: its next
// renewal reports the lease lost, and the Scheduler cancels the run's
// context. Renewals come every third of Job.RunLease, so a test that waits
// for the cancellation should set RunLease short. Only a SkipIfRunning job
// holds a run lease; for others LoseLease has no effect.
func (c *Cluster) LoseLease(job string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lose[job] = true
}

// Grants returns every grant so far, in the order granted.
func (c *Cluster) Grants() []Grant {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.grants)
}

// WaitGrants waits until at least n ticks were granted, to this node or
// to others by GrantTo, and returns every grant so far. It returns an
// error wrapping ctx.Err() if ctx ends first.
func (c *Cluster) WaitGrants(ctx context.Context, n int) ([]Grant, error) {
	for {
		c.mu.Lock()
		got, wake := len(c.grants), c.granted
		c.mu.Unlock()
		if got >= n {
			return c.Grants(), nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return c.Grants(), fmt.Errorf("schedulertest: %d of %d grants: %w", got, n, ctx.Err())
		}
	}
}

// applyLocked commits one command to the state machine at the next index,
// stamped with the current time, as a leader would.
func (c *Cluster) applyLocked(cmd []byte) (any, error) {
	if err := fsm.Stamp(cmd, time.Now()); err != nil {
		return nil, fmt.Errorf("schedulertest: stamp: %w", err)
	}
	c.index++
	return c.state.Apply(&raft.Log{Index: c.index, Term: 1, Type: raft.LogCommand, Data: cmd}), nil
}

// claim is seam.Coordinator's Claim.
func (c *Cluster) claim(ctx context.Context, claims []fsm.Claim, anyOrder bool) (*fsm.ClaimResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// One batch is one entry: if any of its claims is scripted to fail,
	// the whole batch fails and nothing in it is granted.
	var failed error
	for _, cl := range claims {
		if q := c.script[cl.Job]; len(q) > 0 && q[0].err != nil {
			c.script[cl.Job] = q[1:]
			failed = errors.Join(failed, q[0].err)
		}
	}
	if failed != nil {
		return nil, failed
	}
	for _, cl := range claims {
		if q := c.script[cl.Job]; len(q) > 0 {
			c.script[cl.Job] = q[1:]
			if err := c.grantElsewhereLocked(q[0].to, cl); err != nil {
				return nil, err
			}
		}
	}
	out, err := c.applyLocked(fsm.EncodeClaims(fsm.ClaimBatch{Node: c.name, Claims: claims, AnyOrder: anyOrder}))
	if err != nil {
		return nil, err
	}
	res, ok := out.(*fsm.ClaimResult)
	if !ok {
		return nil, fmt.Errorf("schedulertest: state machine answered a claim with %T (%v)", out, out)
	}
	for i, o := range res.Outcomes {
		if o.Reason == fsm.ReasonGranted {
			c.recordLocked(claims[i], c.name, o.Token)
		}
	}
	return res, nil
}

// grantElsewhereLocked grants cl to node other, whose run ends at once.
func (c *Cluster) grantElsewhereLocked(other string, cl fsm.Claim) error {
	out, err := c.applyLocked(fsm.EncodeClaims(fsm.ClaimBatch{Node: other, Claims: []fsm.Claim{cl}}))
	if err != nil {
		return err
	}
	res, ok := out.(*fsm.ClaimResult)
	if !ok || len(res.Outcomes) != 1 {
		return fmt.Errorf("schedulertest: state machine answered a claim with %T (%v)", out, out)
	}
	if o := res.Outcomes[0]; o.Reason == fsm.ReasonGranted {
		c.recordLocked(cl, other, o.Token)
		if cl.Exclusive {
			_, err := c.applyLocked(fsm.EncodeRunUpdate(fsm.RunUpdate{Node: other, Done: []fsm.RunRef{{Job: cl.Job, Tick: cl.Tick}}}))
			return err
		}
	}
	return nil
}

func (c *Cluster) recordLocked(cl fsm.Claim, node string, token uint64) {
	c.grants = append(c.grants, Grant{Job: cl.Job, Tick: cl.Tick, At: time.Unix(0, cl.At), Node: node, Token: token})
	close(c.granted)
	c.granted = make(chan struct{})
}

// updateRuns is seam.RunLeaser's UpdateRuns. A lease LoseLease marked is
// reported lost and ended in the state machine, so later ticks can be
// granted.
func (c *Cluster) updateRuns(ctx context.Context, renew, done []fsm.RunRef, finished []fsm.Finished) ([]bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var keep []fsm.RunRef
	lost := make(map[int]bool)
	for i, ref := range renew {
		if c.lose[ref.Job] {
			delete(c.lose, ref.Job)
			lost[i] = true
			done = append(done, ref)
			continue
		}
		keep = append(keep, ref)
	}
	out, err := c.applyLocked(fsm.EncodeRunUpdate(fsm.RunUpdate{Node: c.name, Renew: keep, Done: done, Finished: finished}))
	if err != nil {
		return nil, err
	}
	res, ok := out.(*fsm.RunUpdateResult)
	if !ok || len(res.Renewed) != len(keep) {
		return nil, fmt.Errorf("schedulertest: state machine answered a run update with %T (%v)", out, out)
	}
	held := make([]bool, len(renew))
	j := 0
	for i := range renew {
		if lost[i] {
			continue
		}
		held[i] = res.Renewed[j]
		j++
	}
	return held, nil
}

// plumbing is a *Cluster as the scheduler sees it.
type plumbing struct{ c *Cluster }

var (
	_ seam.Coordinator = plumbing{}
	_ seam.RunLeaser   = plumbing{}
	_ seam.LocalRunner = plumbing{}
	_ seam.RunReporter = plumbing{}
	_ seam.Controller  = plumbing{}
	_ seam.Tagger      = plumbing{}
)

func (p plumbing) Name() string         { return p.c.name }
func (p plumbing) Logger() hclog.Logger { return p.c.logger }

func (p plumbing) Claim(ctx context.Context, claims []fsm.Claim, anyOrder bool) (*fsm.ClaimResult, error) {
	return p.c.claim(ctx, claims, anyOrder)
}

// Register records the node's jobs in the state machine, as a real node
// does; the fake's node stays the only candidate.
func (p plumbing) Register(ctx context.Context, add, remove []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	_, err := p.c.applyLocked(fsm.EncodeRegistration(fsm.Registration{Node: p.c.name, Add: add, Remove: remove}))
	return err
}

func (p plumbing) Candidates(string) []string { return []string{p.c.name} }

func (p plumbing) LastGrant(job string) (fsm.JobState, bool) {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	return p.c.state.Job(job)
}

func (p plumbing) UpdateRuns(ctx context.Context, renew, done []fsm.RunRef) ([]bool, error) {
	return p.c.updateRuns(ctx, renew, done, nil)
}

func (p plumbing) ReportRuns(ctx context.Context, renew, done []fsm.RunRef, finished []fsm.Finished) ([]bool, error) {
	return p.c.updateRuns(ctx, renew, done, finished)
}

func (p plumbing) SetPaused(ctx context.Context, job string, paused bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	_, err := p.c.applyLocked(fsm.EncodePause(fsm.Pause{Job: job, Paused: paused}))
	return err
}

func (p plumbing) RunNow(ctx context.Context, job string) (*fsm.RunNowResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	out, err := p.c.applyLocked(fsm.EncodeRunNow(job))
	if err != nil {
		return nil, err
	}
	res, ok := out.(*fsm.RunNowResult)
	if !ok {
		return nil, fmt.Errorf("schedulertest: state machine answered a run-now request with %T (%v)", out, out)
	}
	return res, nil
}

func (p plumbing) Paused(job string) bool {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	return p.c.state.Paused(job)
}

func (p plumbing) RunNowRequests() map[string]fsm.RunNowRequest {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	return p.c.state.RunNowRequests()
}

func (p plumbing) RunNowChanged() <-chan struct{} {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	return p.c.state.RunNowChanged()
}

func (p plumbing) History(job string) []fsm.HistoryEntry {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	return p.c.state.History(job)
}

func (p plumbing) Tags() map[string]string { return p.c.tags }

func (p plumbing) LocalRuns() *runreg.Registry { return p.c.runs }
