package scheduler

import (
	"encoding/binary"
	"hash/fnv"
	"slices"
)

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
	var tb [8]byte
	binary.BigEndian.PutUint64(tb[:], uint64(instant))
	for i, c := range candidates {
		h := fnv.New64a()
		h.Write([]byte(job))
		h.Write([]byte{0})
		h.Write(tb[:])
		h.Write([]byte{0})
		h.Write([]byte(c))
		s[i] = scored{c, mix(h.Sum64())}
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
