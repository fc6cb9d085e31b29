package scheduler

import (
	"encoding/binary"
	"hash/fnv"
	"time"
)

// jitter returns the job's delay for the tick at instant: a value in
// [0, j) derived from a hash of (job, instant), so every replica computes
// the same delay for the same tick without talking to the others, and
// jobs that share a schedule start spread over [instant, instant+j).
func jitter(job string, instant time.Time, j time.Duration) time.Duration {
	if j <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(job))
	h.Write([]byte{1}) // not rank's separator: independent of the ranking
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(instant.UnixNano()))
	h.Write(b[:])
	return time.Duration(mix(h.Sum64()) % uint64(j))
}
