package cluster

import (
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// deposedHold is how long a node leaves the leader that was just replaced
// out of the nodes it spreads ticks over. A leader that crashed stays
// alive in gossip for seconds: memberlist probes one member a second,
// suspects it only after a probe and its indirect probes fail, and
// declares it dead four suspicion periods later. Raft notices within one
// election. Without the hold the dead leader keeps its rank for about a
// third of the ticks, and the live nodes claim those only at their
// fallback moments, late; a late run of a job with a short interval is
// then still going at the next tick and blocks it (docs/failure-modes.md,
// "After an election"). Five seconds covers the time memberlist takes to
// suspect a crashed member of a small cluster, after which suspicion
// keeps it out. Leaving out a live node costs nothing but its share of
// the ticks for the hold: it still claims as it ranks itself, and the
// state machine grants each tick once.
const deposedHold = 5 * time.Second

// suspectPoll is how often the maintenance loop looks for members that
// gossip suspects. memberlist raises no event when it suspects a member,
// only when it declares it dead, so suspicion has to be polled.
const suspectPoll = 250 * time.Millisecond

// suspects tracks the members a node leaves out of tick ranking although
// gossip has not declared them dead: the leader that was just replaced,
// for deposedHold, and every member that memberlist suspects. Dropping a
// candidate only moves the other nodes' claims earlier, so a wrong guess
// never costs a tick. Only the maintenance loop uses it.
type suspects struct {
	self       string
	lastLeader string
	deposed    string
	until      time.Time
}

// observeLeader records a leader observation. A change from one known
// leader to another deposes the first, unless it is this node, which
// knows it is alive.
func (s *suspects) observeLeader(id raft.ServerID, now time.Time) {
	if id == "" {
		return // an election is going on; the old leader is not replaced yet
	}
	name := nameOf(id)
	if s.lastLeader != "" && name != s.lastLeader && s.lastLeader != s.self {
		s.deposed, s.until = s.lastLeader, now.Add(deposedHold)
	}
	s.lastLeader = name
}

// excluded returns the members to leave out of ranking at now: the
// deposed leader while its hold lasts, and the members ml suspects.
// It returns nil when there are none, as usual.
func (s *suspects) excluded(ml *memberlist.Memberlist, now time.Time) map[string]struct{} {
	var out map[string]struct{}
	add := func(name string) {
		if name == s.self {
			return
		}
		if out == nil {
			out = make(map[string]struct{})
		}
		out[name] = struct{}{}
	}
	if s.deposed != "" {
		if now.Before(s.until) {
			add(s.deposed)
		} else {
			s.deposed = ""
		}
	}
	if ml != nil {
		for _, m := range ml.Members() {
			if m.State == memberlist.StateSuspect {
				add(m.Name)
			}
		}
	}
	return out
}
