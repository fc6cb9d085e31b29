package scheduler

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"testing"
	"time"
)

func TestRankDeterministicAndOrderIndependent(t *testing.T) {
	candidates := []string{"node-a", "node-b", "node-c", "node-d", "node-e"}
	for job := range 20 {
		name := fmt.Sprintf("job-%d", job)
		for tick := int64(-50); tick < 50; tick++ {
			want := rank(name, tick, candidates)
			if got := rank(name, tick, candidates); !slices.Equal(got, want) {
				t.Fatalf("rank(%s, %d) not deterministic: %v then %v", name, tick, want, got)
			}
			// Every permutation-ish: reversed and rotated inputs.
			rev := slices.Clone(candidates)
			slices.Reverse(rev)
			rot := append(slices.Clone(candidates[2:]), candidates[:2]...)
			for _, in := range [][]string{rev, rot} {
				if got := rank(name, tick, in); !slices.Equal(got, want) {
					t.Fatalf("rank(%s, %d, %v) = %v; with %v it was %v", name, tick, in, got, candidates, want)
				}
			}
			// Each candidate exactly once.
			sorted := slices.Clone(want)
			slices.Sort(sorted)
			if !slices.Equal(sorted, candidates) {
				t.Fatalf("rank(%s, %d) = %v; want a permutation of %v", name, tick, want, candidates)
			}
		}
	}
}

func TestRankDoesNotModifyInput(t *testing.T) {
	in := []string{"c", "a", "b"}
	rank("job", 7, in)
	if !slices.Equal(in, []string{"c", "a", "b"}) {
		t.Errorf("rank reordered its input: %v", in)
	}
}

func TestRankEdgeCases(t *testing.T) {
	if got := rank("job", 1, nil); len(got) != 0 {
		t.Errorf("rank with no candidates = %v, want empty", got)
	}
	if got := rank("job", 1, []string{"only"}); !slices.Equal(got, []string{"only"}) {
		t.Errorf("rank with one candidate = %v", got)
	}
	// The job name and the tick both matter: some tick and some job must
	// change the order of two nodes.
	var tickMoves, jobMoves bool
	for k := range int64(64) {
		if rank("job", k, []string{"a", "b"})[0] != rank("job", 0, []string{"a", "b"})[0] {
			tickMoves = true
		}
		if rank(fmt.Sprint("job", k), 0, []string{"a", "b"})[0] != rank("job", 0, []string{"a", "b"})[0] {
			jobMoves = true
		}
	}
	if !tickMoves || !jobMoves {
		t.Errorf("first choice ignores the tick (%v) or the job (%v)", !tickMoves, !jobMoves)
	}
}

// TestRankSpread checks that over 30,000 (job, tick) pairs each of three
// nodes ranks first about a third of the time, and also second and last.
func TestRankSpread(t *testing.T) {
	nodes := []string{"node-a", "node-b", "node-c"}
	const jobs, ticks = 30, 1000
	counts := map[string][3]int{}
	for j := range jobs {
		job := fmt.Sprintf("job-%d", j)
		base := int64(1_750_000_000_000 / 100) // ticks of a 100ms job, today
		for k := base; k < base+ticks; k++ {
			for pos, n := range rank(job, k, nodes) {
				c := counts[n]
				c[pos]++
				counts[n] = c
			}
		}
	}
	const total = jobs * ticks
	for _, n := range nodes {
		for pos := range 3 {
			share := float64(counts[n][pos]) / total
			if share < 0.30 || share > 0.37 {
				t.Errorf("%s ranks at position %d in %.1f%% of %d pairs; want about 33%%", n, pos, 100*share, total)
			}
		}
	}
	t.Logf("positions per node: %v", counts)
}

// TestRankMinimalDisruption removes one candidate: only the pairs it ranked
// first change their first choice, to the one it ranked second, and those
// pairs spread evenly over the remaining nodes.
func TestRankMinimalDisruption(t *testing.T) {
	all := []string{"node-a", "node-b", "node-c"}
	without := []string{"node-a", "node-b"}
	moved := map[string]int{}
	var movedTotal int
	for j := range 30 {
		job := fmt.Sprintf("job-%d", j)
		for k := int64(0); k < 1000; k++ {
			full, less := rank(job, k, all), rank(job, k, without)
			if full[0] != "node-c" {
				if less[0] != full[0] {
					t.Fatalf("(%s, %d): removing node-c moved the first choice from %s to %s", job, k, full[0], less[0])
				}
			} else {
				if less[0] != full[1] {
					t.Fatalf("(%s, %d): node-c's pair went to %s, not the second choice %s", job, k, less[0], full[1])
				}
				moved[less[0]]++
				movedTotal++
			}
			// The relative order of the remaining nodes is unchanged.
			var rest []string
			for _, n := range full {
				if n != "node-c" {
					rest = append(rest, n)
				}
			}
			if !slices.Equal(rest, less) {
				t.Fatalf("(%s, %d): order %v became %v after removing node-c", job, k, full, less)
			}
		}
	}
	for _, n := range without {
		share := float64(moved[n]) / float64(movedTotal)
		if share < 0.45 || share > 0.55 {
			t.Errorf("%s took %.1f%% of node-c's %d pairs; want about half", n, 100*share, movedTotal)
		}
	}
}

func TestPosition(t *testing.T) {
	order := []string{"b", "c", "a"}
	tests := []struct {
		name string
		want int
	}{
		{"b", 0}, {"c", 1}, {"a", 2},
		{"absent", 3}, // not a candidate: after everyone
		{"", 3},
	}
	for _, tt := range tests {
		if got := position(order, tt.name); got != tt.want {
			t.Errorf("position(%v, %q) = %d, want %d", order, tt.name, got, tt.want)
		}
	}
	if got := position(nil, "a"); got != 0 {
		t.Errorf("position(nil, a) = %d, want 0", got)
	}
}

// TestScoreMatchesHashFNV pins the inline hash to hash/fnv's FNV-1a, which
// earlier versions used: replicas of different versions must rank the
// nodes of a tick, and jitter its start, alike.
func TestScoreMatchesHashFNV(t *testing.T) {
	for _, job := range []string{"", "a", "report", "job-with-a-long-name-ünïcode"} {
		for _, instant := range []int64{0, 1, -1, 1_750_000_000_000_000_000, math.MinInt64, math.MaxInt64} {
			for _, node := range []string{"", "node0", "n"} {
				h := fnv.New64a()
				h.Write([]byte(job))
				h.Write([]byte{0})
				var b [8]byte
				binary.BigEndian.PutUint64(b[:], uint64(instant))
				h.Write(b[:])
				h.Write([]byte{0})
				h.Write([]byte(node))
				if got, want := score(job, instant, node), mix(h.Sum64()); got != want {
					t.Fatalf("score(%q, %d, %q) = %x, want %x", job, instant, node, got, want)
				}
			}
			j := fnv.New64a()
			j.Write([]byte(job))
			j.Write([]byte{1})
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], uint64(instant))
			j.Write(b[:])
			const window = 7 * time.Second
			if got, want := jitter(job, time.Unix(0, instant), window), time.Duration(mix(j.Sum64())%uint64(window)); got != want {
				t.Fatalf("jitter(%q, %d) = %s, want %s", job, instant, got, want)
			}
		}
	}
}

// TestPositionOfMatchesRank checks the allocation-free position against
// the full order, for members and non-members of the candidates.
func TestPositionOfMatchesRank(t *testing.T) {
	sets := [][]string{nil, {"me"}, {"a", "me"}, {"a", "b", "me"}, {"a", "b", "c"}, {"me", "z", "y", "x", "w"}}
	for _, cands := range sets {
		for k := range int64(500) {
			job := fmt.Sprintf("job-%d", k%17)
			instant := k * int64(time.Second)
			want := position(rank(job, instant, cands), "me")
			if got := positionOf(job, instant, cands, "me"); got != want {
				t.Fatalf("positionOf(%s, %d, %v) = %d, want %d", job, instant, cands, got, want)
			}
		}
	}
}

func BenchmarkPositionOf(b *testing.B) {
	cands := []string{"node0", "node1", "node2"}
	b.ReportAllocs()
	for i := range b.N {
		positionOf("job-12345", int64(i)*int64(time.Second), cands, "node1")
	}
}
