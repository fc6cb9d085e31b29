// Package scheduler runs jobs on exactly one replica per tick.
//
// A job's ticks are the instants of its Schedule: Every (aligned to the
// Unix epoch: tick k of Every(d) falls at k×d), Cron or At. A tick is
// named by its instant, so replicas that started at different times agree
// on which tick is which. On each tick, every replica that registered the
// job ranks the live candidates by rendezvous hashing of (job, instant); the first claims
// the tick at once and the others only after a growing fallback delay, if
// the tick is still unclaimed. A claim is a Raft entry, and a run starts only
// after the committed entry granted that (job, tick) to this node; the
// entry's index is the run's fencing token. Claims one node makes for the
// same instant share one entry.
//
// Without a cluster the Scheduler runs every tick locally. GoInterval is a
// drop-in for gointerlock's type of the same name.
package scheduler
