package scheduler

import "time"

// jitter returns the job's delay for the tick at instant: a value in
// [0, j) derived from a hash of (job, instant), so every replica computes
// the same delay for the same tick without talking to the others, and
// jobs that share a schedule start spread over [instant, instant+j).
func jitter(job string, instant time.Time, j time.Duration) time.Duration {
	if j <= 0 {
		return 0
	}
	h := fnvString(fnvOffset, job)
	h = fnvByte(h, 1) // not rank's separator: independent of the ranking
	h = fnvUint64(h, uint64(instant.UnixNano()))
	return time.Duration(mix(h) % uint64(j))
}
