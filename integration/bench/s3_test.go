package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestLongestGap(t *testing.T) {
	t0 := time.Unix(100, 0)
	at := func(ms int) runRec { return runRec{job: "j", start: t0.Add(time.Duration(ms) * time.Millisecond)} }
	cases := []struct {
		name string
		runs []runRec
		want time.Duration
	}{
		{"no run", nil, time.Second},
		{"hole in the middle", []runRec{at(10), at(100), at(700), at(800)}, 600 * time.Millisecond},
		{"hole at the end", []runRec{at(10), at(100)}, 900 * time.Millisecond},
		{"other job and outside the window ignored", []runRec{{job: "k", start: t0.Add(500 * time.Millisecond)}, at(-50), at(400), at(1500)}, 600 * time.Millisecond},
	}
	for _, tc := range cases {
		if got := longestGap(tc.runs, "j", t0, t0.Add(time.Second)); got != tc.want {
			t.Errorf("%s: longestGap = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestEveryListsRepetitionsThatDiffer(t *testing.T) {
	cases := []struct {
		in   rep
		want string
	}{
		{nil, "–"},
		{rep{917, 917}, "917"},
		{rep{917, 5219, math.NaN()}, "917, 5,219, never"},
		{rep{math.NaN()}, "never"},
	}
	for _, tc := range cases {
		if got := every(tc.in); got != tc.want {
			t.Errorf("every(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPartitionCutsOnlyAcrossTheVictim(t *testing.T) {
	p := newPartitioner(func() []int { return nil })
	if p.cut(0, 1) {
		t.Fatal("cut with no victim")
	}
	p.isolate(1)
	cases := []struct {
		src, dst int
		want     bool
	}{
		{0, 1, true}, {1, 0, true}, {1, 2, true}, {0, 2, false}, {1, 1, false},
		{1, -1, true}, {0, -1, false}, {-1, 1, false},
	}
	for _, tc := range cases {
		if got := p.cut(tc.src, tc.dst); got != tc.want {
			t.Errorf("cut(%d, %d) = %v, want %v", tc.src, tc.dst, got, tc.want)
		}
	}
}

// TestFailoverWhyMatchesThePeer checks that the reason given for a peer's
// shorter failover gap is the peer's own: gointerlock's rows are about its
// leaderless race (with its duplicates when it had any), and only the Redis
// lock's store loss is about the bench's restart delay.
func TestFailoverWhyMatchesThePeer(t *testing.T) {
	cases := []struct {
		name      string
		row       failRow
		want, not string
	}{
		{"gointerlock with duplicates", failRow{sys: sysGointerlock, dups: rep{109, 106, 149}}, "duplicates 109, 106, 149", "restarting redis-server"},
		{"gointerlock without duplicates", failRow{sys: sysGointerlock, dups: rep{0, 0}}, "no leader to replace", "twice"},
		{"Redis lock store loss", failRow{sys: sysRedisLock, dups: rep{1}}, "restarting redis-server", "no leader"},
		{"etcd election", failRow{sys: sysEtcdElect}, "local timer", "redis"},
	}
	for _, tc := range cases {
		got := failoverWhy(tc.row)
		if !strings.Contains(got, tc.want) || strings.Contains(got, tc.not) {
			t.Errorf("%s: %q, want it to say %q and not %q", tc.name, got, tc.want, tc.not)
		}
	}
}
