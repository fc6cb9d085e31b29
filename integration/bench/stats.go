package main

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// durs is a sample of latencies.
type durs []time.Duration

func (d durs) sorted() durs {
	c := append(durs(nil), d...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	return c
}

// sum returns the total of d.
func (d durs) sum() time.Duration {
	var t time.Duration
	for _, x := range d {
		t += x
	}
	return t
}

// pct returns the p-th percentile (0..100) by nearest rank; 0 for an empty
// sample.
func (d durs) pct(p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := d.sorted()
	return pctSorted(s, p)
}

func pctSorted(s durs, p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	idx := int(math.Ceil(p/100*float64(len(s)))) - 1
	idx = max(0, min(idx, len(s)-1))
	return s[idx]
}

// rep collects one figure over several repetitions.
type rep []float64

// finite drops NaN entries (repetitions with no sample).
func (r rep) finite() rep {
	var out rep
	for _, v := range r {
		if !math.IsNaN(v) {
			out = append(out, v)
		}
	}
	return out
}

func (r rep) median() float64 {
	r = r.finite()
	if len(r) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), r...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func (r rep) min() float64 {
	r = r.finite()
	if len(r) == 0 {
		return math.NaN()
	}
	m := r[0]
	for _, v := range r {
		m = math.Min(m, v)
	}
	return m
}

func (r rep) max() float64 {
	r = r.finite()
	if len(r) == 0 {
		return math.NaN()
	}
	m := r[0]
	for _, v := range r {
		m = math.Max(m, v)
	}
	return m
}

// spread is (max-min)/median in percent: how noisy the repetitions were.
func (r rep) spread() float64 {
	m := r.median()
	if len(r) < 2 || m == 0 || math.IsNaN(m) {
		return math.NaN()
	}
	return (r.max() - r.min()) / math.Abs(m) * 100
}

// num formats a number compactly.
func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case math.IsInf(v, 0):
		return "∞"
	case v == 0:
		return "0"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return commas(int64(v))
	case math.Abs(v) >= 1000:
		return commas(int64(math.Round(v)))
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func commas(n int64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	s := fmt.Sprint(n)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// cell renders "median (min–max)" for a repetition, or just the median with
// one repetition.
func cell(r rep) string {
	if len(r.finite()) == 0 {
		return "–"
	}
	if len(r) == 1 || r.min() == r.max() {
		return num(r.median())
	}
	return fmt.Sprintf("%s (%s–%s)", num(r.median()), num(r.min()), num(r.max()))
}

func ms(d time.Duration) float64 {
	if d == noRuns {
		return math.NaN()
	}
	return float64(d) / float64(time.Millisecond)
}
