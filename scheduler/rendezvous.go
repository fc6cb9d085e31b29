package scheduler

import "slices"

// rank orders candidate nodes for one (job, instant) by rendezvous (highest
// random weight) hashing; instant is the tick's scheduled instant in Unix
// nanoseconds, its identity whatever the schedule. Every replica with the same candidate list computes
// the same order, with no coordination, and when a candidate disappears
// only the ticks it ranked first move, evenly, to the others.
func rank(job string, instant int64, candidates []string) []string {
	type scored struct {
		name  string
		score uint64
	}
	s := make([]scored, len(candidates))
	for i, c := range candidates {
		s[i] = scored{c, score(job, instant, c)}
	}
	slices.SortFunc(s, func(a, b scored) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = x.name
	}
	return out
}

// score is a candidate's weight for one (job, instant): FNV-1a of the job,
// a zero byte, the instant in big-endian, a zero byte and the candidate,
// mixed. It is computed inline, not with hash/fnv, because the scheduler
// scores every candidate of every tick of tens of thousands of jobs, and
// the hash.Hash value escapes to the heap.
func score(job string, instant int64, candidate string) uint64 {
	h := fnvString(fnvOffset, job)
	h = fnvByte(h, 0)
	h = fnvUint64(h, uint64(instant))
	h = fnvByte(h, 0)
	return mix(fnvString(h, candidate))
}

// positionOf returns self's index in rank(job, instant, candidates), or
// len(candidates) if self is not a candidate, without building the order:
// it counts the candidates that rank before self.
func positionOf(job string, instant int64, candidates []string, self string) int {
	if !slices.Contains(candidates, self) {
		return len(candidates)
	}
	mine := score(job, instant, self)
	pos := 0
	for _, c := range candidates {
		if c == self {
			continue
		}
		if sc := score(job, instant, c); sc > mine || (sc == mine && c < self) {
			pos++
		}
	}
	return pos
}

// FNV-1a, 64 bits, as hash/fnv computes it.
const (
	fnvOffset uint64 = 14695981039346656037
	fnvPrime  uint64 = 1099511628211
)

func fnvByte(h uint64, b byte) uint64 { return (h ^ uint64(b)) * fnvPrime }

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = fnvByte(h, s[i])
	}
	return h
}

// fnvUint64 hashes v's eight bytes, most significant first.
func fnvUint64(h, v uint64) uint64 {
	for shift := 56; shift >= 0; shift -= 8 {
		h = fnvByte(h, byte(v>>shift))
	}
	return h
}

// mix is the splitmix64 finalizer. FNV alone spreads short, similar keys
// poorly in its high bits; this makes every input bit affect every output
// bit.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// position returns name's index in order, or len(order) if absent: a node
// that is not (yet) a registered live candidate goes last.
func position(order []string, name string) int {
	for i, n := range order {
		if n == name {
			return i
		}
	}
	return len(order)
}
