package cluster

import (
	"math/rand/v2"
	"time"

	"github.com/hashicorp/raft"
)

// Why a follower looks at its leader contact itself.
//
// hashicorp/raft's follower looks at how long ago it last heard from the
// leader only when a timer fires, and it re-arms that timer for a random
// HeartbeatTimeout to 2×HeartbeatTimeout each time, whether or not it
// heard from the leader meanwhile. A silent leader is therefore noticed
// between one and three HeartbeatTimeouts after its last message, 1.78
// on average (the timer's residual wait). And with pre-vote, a follower
// that still knows a leader refuses to vote, so an election needs a
// quorum of followers to have noticed: it waits for the slowest of them.
//
// watchContact narrows that to [HeartbeatTimeout, 1.5×HeartbeatTimeout)
// after this follower's own last contact; etcd's followers, likewise,
// count a random [1, 2) election timeouts from their last heartbeat, not
// from a timer of their own. It does not change when a follower may start an election:
// raft still requires a full HeartbeatTimeout of silence, checked by raft
// itself, so a busy leader is not replaced any sooner than raft's own
// timer could replace it. The random part, drawn once per last contact,
// keeps two followers that last heard the leader at the same moment from
// starting elections together and splitting the vote.
//
// Measured with the bench's S3 rows for Interlock (SIGKILL, a 5 s SIGSTOP
// and a 10 s partition of the leader's process), nine of each, the two
// libraries alternating: the longest stretch with no run of a 100 ms job
// went from a median of 812, 705 and 783 ms to 484, 553 and 491 ms, and
// the largest of all 27 from 1,247 to 875 ms.
//
// raft has no call that runs its contact check now. The one path that
// does is ReloadConfig with a shorter HeartbeatTimeout: the follower's
// timer fires at once, so that the shorter timeout takes effect
// (api.go, ReloadConfig). nudgeContactCheck lengthens the timeout by a
// millisecond and restores it, which leaves the configuration as it was
// and fires that timer. TestFollowerNoticesSilentLeader fails if a raft
// upgrade drops that path.

// contactSpread divides HeartbeatTimeout into the range of the random
// part of a follower's deadline beyond HeartbeatTimeout itself: up to
// half of one.
const contactSpread = 2

// contactCheck decides when a follower looks at its last contact with the
// leader. It is owned by one goroutine (watchContact) and not safe for
// concurrent use.
type contactCheck struct {
	// last is the contact the current deadline was drawn for, and extra
	// the random part of that deadline beyond HeartbeatTimeout.
	last  time.Time
	extra time.Duration
	// nudged is the last contact a nudge was made for: one per contact,
	// after which raft's own timer and election timer take over.
	nudged time.Time
	// follower is whether the last look found a follower, and since when
	// looks have found one. A node that has just become a follower, a
	// leader that stepped down or a candidate that met a higher term, may
	// hold a last contact from long before; raft gives it a full timer
	// from the change, and so does the check, from the first look after
	// it, or it would stand at once and could disrupt a leadership
	// transfer that is about to complete.
	follower      bool
	followerSince time.Time
	draw          func(time.Duration) time.Duration
}

func newContactCheck() *contactCheck {
	return &contactCheck{draw: func(d time.Duration) time.Duration {
		if d <= 0 {
			return 0
		}
		return rand.N(d)
	}}
}

// next returns whether raft's contact check should run now, and how long
// to wait before calling next again. follower is whether the node is a
// Raft follower, last its last contact with a leader (zero if none yet),
// and hb the follower's HeartbeatTimeout.
func (c *contactCheck) next(follower bool, last, now time.Time, hb time.Duration) (nudge bool, wait time.Duration) {
	if !follower {
		// A leader or candidate has its own timers.
		c.follower = false
		return false, hb
	}
	if !c.follower {
		c.follower, c.followerSince = true, now
	}
	if last.IsZero() {
		// A node that never heard from a leader is starting, and raft's
		// timer elects the first leader of a new cluster.
		return false, hb
	}
	if last.Before(c.followerSince) {
		last = c.followerSince
	}
	if !last.Equal(c.last) {
		c.last, c.extra = last, c.draw(hb/contactSpread)
	}
	silent := now.Sub(last)
	deadline := hb + c.extra
	if silent < deadline {
		return false, deadline - silent
	}
	if last.Equal(c.nudged) {
		return false, hb
	}
	c.nudged = last
	return true, hb
}

// watchContact runs until shutdown, making raft's follower look at its
// leader contact once the leader has been silent for this node's
// deadline (see above).
func (n *Node) watchContact() {
	check := newContactCheck()
	hb := n.cfg.HeartbeatTimeout
	t := time.NewTimer(hb)
	defer t.Stop()
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-t.C:
		}
		nudge, wait := check.next(n.raft.State() == raft.Follower, n.raft.LastContact(), time.Now(), hb)
		if nudge && !n.shuttingDown() {
			if err := n.nudgeContactCheck(); err != nil {
				// The timings were validated at Start, so this is not
				// expected; raft's own timer still notices the leader.
				n.logger.Warn("could not start Raft's leader contact check", "error", err)
			}
		}
		t.Reset(wait)
	}
}

// nudgeContactCheck makes raft's follower loop check its leader contact
// now, and leaves Raft's reloadable configuration as it found it. It
// holds reloadMu, which every change of that configuration takes.
func (n *Node) nudgeContactCheck() error {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	rc := n.raft.ReloadableConfig()
	longer := rc
	longer.HeartbeatTimeout += time.Millisecond
	longer.ElectionTimeout = max(rc.ElectionTimeout, longer.HeartbeatTimeout)
	if err := n.raft.ReloadConfig(longer); err != nil {
		return err
	}
	// Shorter than the one just set: raft fires the follower's timer.
	return n.raft.ReloadConfig(rc)
}
