package main

import (
	"math"
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
