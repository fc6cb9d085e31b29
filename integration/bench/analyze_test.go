package main

import (
	"math"
	"testing"
	"time"
)

func TestAnalyzeTicksWithTickIndex(t *testing.T) {
	d := 100 * time.Millisecond
	ws := time.Unix(1000, 0)
	we := ws.Add(time.Second) // ticks 10000..10009
	at := func(k int64, late time.Duration) time.Time { return time.Unix(0, k*int64(d)).Add(late) }
	var runs []runRec
	for k := int64(10000); k < 10010; k++ {
		if k == 10003 {
			continue // missed
		}
		runs = append(runs, runRec{job: "j", tick: k, start: at(k, 2*time.Millisecond)})
	}
	runs = append(runs, runRec{job: "j", tick: 10005, start: at(10005, 5*time.Millisecond)}) // duplicate
	runs = append(runs, runRec{job: "j", tick: 10010, start: at(10010, 0)})                  // outside
	runs = append(runs, runRec{job: "other", tick: 10001, start: at(10001, 0)})              // other job
	st := analyzeTicks(runs, "j", d, ws, we)
	if st.ticks != 10 || st.runs != 10 || st.dups != 1 || st.missed != 1 {
		t.Fatalf("got %+v", st)
	}
	if st.p50 != 2*time.Millisecond || st.max != 5*time.Millisecond {
		t.Fatalf("lateness: %+v", st)
	}
}

func TestAnalyzeTicksByStart(t *testing.T) {
	// gointerlock-style runs carry no tick: each is attributed to the
	// interval it started in.
	d := time.Second
	ws := time.Unix(2000, 0)
	we := ws.Add(3 * time.Second)
	runs := []runRec{
		{job: "j", tick: -1, start: time.Unix(2000, 100e6)},
		{job: "j", tick: -1, start: time.Unix(2000, 133e6)}, // same interval: duplicate
		{job: "j", tick: -1, start: time.Unix(2002, 900e6)},
	}
	st := analyzeTicks(runs, "j", d, ws, we)
	if st.ticks != 3 || st.runs != 3 || st.dups != 1 || st.missed != 1 {
		t.Fatalf("got %+v", st)
	}
	if st.max != 900*time.Millisecond {
		t.Fatalf("max lateness %v", st.max)
	}
}

func TestRepAndPercentiles(t *testing.T) {
	r := rep{3, 1, math.NaN(), 2}
	if r.median() != 2 || r.min() != 1 || r.max() != 3 {
		t.Fatalf("median %v min %v max %v", r.median(), r.min(), r.max())
	}
	if got := cell(rep{math.NaN()}); got != "–" {
		t.Fatalf("cell of no sample = %q", got)
	}
	d := durs{5, 1, 4, 2, 3}
	if d.pct(50) != 3 || d.pct(99) != 5 || d.pct(0) != 1 {
		t.Fatalf("percentiles %v %v %v", d.pct(50), d.pct(99), d.pct(0))
	}
	if num(1234567) != "1,234,567" || num(0.0712) != "0.071" || num(12) != "12" {
		t.Fatalf("num: %s %s %s", num(1234567), num(0.0712), num(12))
	}
	if ratio(2, 4) != "0.50×" || ratio(30, 2) != "15×" {
		t.Fatalf("ratio: %s %s", ratio(2, 4), ratio(30, 2))
	}
}
