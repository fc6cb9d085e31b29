package httpapi

import "time"

// The types below are the JSON bodies of the API. Field names are part of
// the API's contract: cmd/interlock and the /ui page read them, and so may
// operators' scripts. Add fields; never rename or remove one.

// Status is the body of GET /v1/status: what this node knows about itself,
// the leader and every member.
type Status struct {
	// Node is this node's name, Cluster its ClusterName.
	Node    string `json:"node"`
	Cluster string `json:"cluster"`
	// Leader is the name of the node this one believes leads; "" if none
	// is known.
	Leader string `json:"leader"`
	// Role is this node's Raft role: "leader", "follower", "candidate" or
	// "shutdown".
	Role string `json:"role"`
	// Term is this node's current Raft term; CommitIndex, AppliedIndex and
	// LastIndex are its Raft indexes.
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	LastIndex    uint64 `json:"last_index"`
	// Ready is what GET /readyz answers; NotReady says why not.
	Ready    bool   `json:"ready"`
	NotReady string `json:"not_ready,omitempty"`
	// Members lists every node known by gossip or in the Raft
	// configuration, sorted by name.
	Members []Member `json:"members"`
}

// Member is one node as seen from the node that answers.
type Member struct {
	Name       string `json:"name"`
	GossipAddr string `json:"gossip_addr,omitempty"`
	RaftAddr   string `json:"raft_addr,omitempty"`
	// Gossip is the member's gossip state: "alive", "suspect", "failed",
	// "left", or "" if gossip does not know it (a Raft server only).
	Gossip string `json:"gossip"`
	// Role is "leader", "voter", "nonvoter", or "none" when the node is
	// not in the Raft configuration.
	Role string `json:"role"`
	// Healthy is the leader's judgement of the server (from Raft's last
	// contact and the stabilization time), known only on the leader.
	Healthy *bool `json:"healthy,omitempty"`
	// LastContactSeconds is how long ago the leader last heard from the
	// server, known only on the leader.
	LastContactSeconds *float64          `json:"last_contact_seconds,omitempty"`
	Tags               map[string]string `json:"tags,omitempty"`
}

// Job is one element of GET /v1/jobs.
type Job struct {
	Name string `json:"name"`
	// Schedule describes when ticks fall, as the scheduler prints it, such
	// as "every 1m0s" or "cron 0 3 * * *".
	Schedule string `json:"schedule"`
	// Next is the next tick this node has queued, if any.
	Next *time.Time `json:"next,omitempty"`
	// LastAt, Owner and Token describe the job's latest grant
	// cluster-wide.
	LastAt *time.Time `json:"last_at,omitempty"`
	Owner  string     `json:"owner,omitempty"`
	Token  uint64     `json:"token,omitempty"`
	Paused bool       `json:"paused"`
	// Eligible is whether this node may run the job (its RequireTags).
	Eligible bool `json:"eligible"`
	// LastRun is the latest finished run; Recent the latest runs, newest
	// first, at most ten.
	LastRun *Run  `json:"last_run,omitempty"`
	Recent  []Run `json:"recent,omitempty"`
}

// Run is one finished run, the body of GET /v1/jobs/{name}/history (a list,
// newest first) and part of Job.
type Run struct {
	Node            string    `json:"node"`
	Token           uint64    `json:"token"`
	Tick            int64     `json:"tick"`
	At              time.Time `json:"at"`
	Start           time.Time `json:"start"`
	DurationSeconds float64   `json:"duration_seconds"`
	// Result is "success", "error" or "panic".
	Result string `json:"result"`
	Error  string `json:"error,omitempty"`
}

// Lock is one element of GET /v1/locks.
type Lock struct {
	Name string `json:"name"`
	// Holder is the holding node's name, "" when the lock is free; Owner
	// the holder's lease owner ID.
	Holder string `json:"holder,omitempty"`
	Owner  string `json:"owner,omitempty"`
	Token  uint64 `json:"token,omitempty"`
	// Expires is the lease's expiry by the leader's clock.
	Expires *time.Time `json:"expires,omitempty"`
	// Waiters are the nodes queued for the lock, in order.
	Waiters []string `json:"waiters,omitempty"`
}

// Error is the body of every 4xx and 5xx answer.
type Error struct {
	// Error says what went wrong and, where the caller can, how to fix it.
	Error string `json:"error"`
}

// Action is the body of a write operation that succeeded.
type Action struct {
	// Action is "run", "pause", "resume", "remove-peer" or
	// "transfer-leadership"; Target the job or node it acted on ("" for a
	// transfer to whichever voter Raft picked).
	Action string `json:"action"`
	Target string `json:"target,omitempty"`
	// Node is the node that took the request.
	Node string `json:"node"`
	// Leader is the leader known once the operation returned.
	Leader string `json:"leader,omitempty"`
	// Message says in a sentence what was done.
	Message string `json:"message"`
}
