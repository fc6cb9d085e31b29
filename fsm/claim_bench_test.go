package fsm_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/interlockraft/interlock/fsm"
)

// BenchmarkApplyClaims measures the state machine applying one claim entry
// of N claims for N distinct jobs, in steady state: the jobs are registered
// by three nodes and were granted once before the timer starts. Each
// iteration is the next tick of every job, claimed by one of the nodes in
// turn, so every claim is granted, as the rank-0 claims of a tick are. It
// reports ns/claim and allocs/claim; ns/op is one whole entry. The run
// lease is shorter than the interval, so an exclusive claim finds the
// previous run's lease ended, as it does when runs are short.
//
// The entry is encoded before the timer starts, since in a cluster the
// claimer encodes it; decoding it is part of Apply and is measured.
// A second variant also encodes the result, as the leader does for a
// follower's claims, and decodes it, as that follower does.
func BenchmarkApplyClaims(b *testing.B) {
	for _, n := range []int{10000, 50000} {
		b.Run(fmt.Sprintf("claims=%d", n), func(b *testing.B) { benchApplyClaims(b, n, false) })
		b.Run(fmt.Sprintf("claims=%d/result", n), func(b *testing.B) { benchApplyClaims(b, n, true) })
	}
}

func benchApplyClaims(b *testing.B, n int, result bool) {
	nodes := []string{"node-1", "node-2", "node-3"}
	jobs := make([]string, n)
	for j := range jobs {
		jobs[j] = fmt.Sprintf("bench-job-%d", j)
	}
	f := fsm.New(nil)
	var index uint64
	for _, node := range nodes {
		index++
		register(b, f, index, fsm.Registration{Node: node, Add: jobs})
	}
	// entry returns the encoded claims of every job for tick k, stamped
	// with the tick's instant.
	entry := func(k int64) []byte {
		claims := make([]fsm.Claim, n)
		for j := range claims {
			claims[j] = fsm.Claim{Job: jobs[j], Tick: k, At: at(k), Deadline: at(k) + sec, Exclusive: true, LeaseTTL: sec / 2}
		}
		cmd := fsm.EncodeClaims(fsm.ClaimBatch{Node: nodes[k%int64(len(nodes))], Claims: claims})
		if err := fsm.Stamp(cmd, time.Unix(0, at(k))); err != nil {
			b.Fatal(err)
		}
		return cmd
	}
	check := func(out interface{}, k int64) {
		res, ok := out.(*fsm.ClaimResult)
		if !ok || len(res.Outcomes) != n {
			b.Fatalf("tick %d: Apply returned %T (%v)", k, out, out)
		}
		for _, o := range res.Outcomes {
			if o.Reason != fsm.ReasonGranted {
				b.Fatalf("tick %d: outcome %+v, want granted", k, o)
			}
		}
	}
	// Grant every job once, so the timed entries find existing state.
	index++
	check(f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: entry(1)}), 1)
	cmds := make([][]byte, b.N)
	for i := range cmds {
		cmds[i] = entry(int64(i) + 2)
	}
	b.ReportAllocs()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	b.ResetTimer()
	for i := range b.N {
		index++
		out := f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: cmds[i]})
		if result {
			res, err := fsm.DecodeClaimResult(fsm.EncodeClaimResult(out.(*fsm.ClaimResult)))
			if err != nil {
				b.Fatal(err)
			}
			out = res
		}
		if i == 0 || i == b.N-1 {
			b.StopTimer()
			check(out, int64(i)+2)
			b.StartTimer()
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/claim")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(b.N)/float64(n), "allocs/claim")
}

// BenchmarkApplyRuns measures the other entry every granted run costs each
// replica: the holder's report that the run finished, which ends its run
// lease (Done) and adds it to the job's history (Finished). Each iteration
// is one tick's claims for N jobs followed by the report of all N runs;
// ns/run and allocs/run count both entries, so the claim cost is included.
// In steady state every history is full, so each report shifts one out.
func BenchmarkApplyRuns(b *testing.B) {
	for _, n := range []int{10000, 50000} {
		b.Run(fmt.Sprintf("runs=%d", n), func(b *testing.B) { benchApplyRuns(b, n) })
	}
}

func benchApplyRuns(b *testing.B, n int) {
	const node = "node-1"
	jobs := make([]string, n)
	for j := range jobs {
		jobs[j] = fmt.Sprintf("bench-job-%d", j)
	}
	f := fsm.New(nil)
	var index uint64
	index++
	register(b, f, index, fsm.Registration{Node: node, Add: jobs})
	// tick returns the encoded claims and run report of every job for
	// tick k, stamped with the tick's instant and 10 ms after it.
	tick := func(k int64) (claims, runs []byte) {
		cs := make([]fsm.Claim, n)
		done := make([]fsm.RunRef, n)
		fin := make([]fsm.Finished, n)
		for j := range cs {
			cs[j] = fsm.Claim{Job: jobs[j], Tick: k, At: at(k), Deadline: at(k) + sec, Exclusive: true, LeaseTTL: 10 * sec}
			done[j] = fsm.RunRef{Job: jobs[j], Tick: k}
			fin[j] = fsm.Finished{Job: jobs[j], Entry: fsm.HistoryEntry{Token: uint64(k), Tick: k, At: at(k), Start: at(k) + 5*sec/1000, Duration: 1000}}
		}
		claims = fsm.EncodeClaims(fsm.ClaimBatch{Node: node, Claims: cs})
		runs = fsm.EncodeRunUpdate(fsm.RunUpdate{Node: node, Done: done, Finished: fin})
		if err := fsm.Stamp(claims, time.Unix(0, at(k))); err != nil {
			b.Fatal(err)
		}
		if err := fsm.Stamp(runs, time.Unix(0, at(k)+10*sec/1000)); err != nil {
			b.Fatal(err)
		}
		return claims, runs
	}
	applyTick := func(k int64, claims, runs []byte) {
		index++
		res, ok := f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: claims}).(*fsm.ClaimResult)
		if !ok || res.Outcomes[n-1].Reason != fsm.ReasonGranted {
			b.Fatalf("tick %d: claims not granted", k)
		}
		index++
		if _, ok := f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: runs}).(*fsm.RunUpdateResult); !ok {
			b.Fatalf("tick %d: run report refused", k)
		}
	}
	// Fill every history, so the timed reports find it full.
	var k int64
	for range fsm.HistoryLen {
		k++
		c, r := tick(k)
		applyTick(k, c, r)
	}
	type entries struct{ claims, runs []byte }
	ticks := make([]entries, b.N)
	for i := range ticks {
		ticks[i].claims, ticks[i].runs = tick(k + 1 + int64(i))
	}
	b.ReportAllocs()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	b.ResetTimer()
	for i := range b.N {
		applyTick(k+1+int64(i), ticks[i].claims, ticks[i].runs)
	}
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	if h := f.History(jobs[n-1]); len(h) != fsm.HistoryLen || h[len(h)-1].Tick != k+int64(b.N) {
		b.Fatalf("history of the last job ends at %+v, want tick %d", h[len(h)-1], k+int64(b.N))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/run")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(b.N)/float64(n), "allocs/run")
}
