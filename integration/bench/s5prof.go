package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime/pprof"
	"sort"
	"strings"
	"time"
)

// The S5 profile: a CPU profile of the bench process (the three Interlock
// nodes, their schedulers and the bench's own recorder) over the
// measurement window of S5's largest job count, in its last repetition,
// with the Raft entries and commands committed in the same window. The
// report summarises it by package: where the CPU goes when the target is
// missed.

// s5Profile is what was measured in the profiled window.
type s5Profile struct {
	jobs   int
	window time.Duration
	// cpu is the process's CPU over the window, % of one core.
	cpu float64
	// p99 and missed are the profiled repetition's.
	p99    time.Duration
	missed int
	// entries is the leader's applied-index advance (every Raft entry);
	// batched the entries its group commit proposed, carrying commands.
	entries, batched, commands uint64
	total                      time.Duration // CPU in the profile's samples
	// runs is how many runs started in the window.
	runs int
	// attributed is each sample given to the innermost part of the system
	// on its stack (runtime and library code to the part that called it;
	// the GC's background work to the GC): it sums to 100%.
	attributed map[string]float64
	// burst is the process's CPU in the 200 ms after each instant.
	burst     cpuBurst
	groups    []profShare // flat share by group, largest first
	cumGroups []profShare // share of samples with a frame in the group
	top       []profFunc  // top functions by flat
	err       string
}

type profShare struct {
	name      string
	flat, cum float64 // % of total
}

type profFunc struct {
	name, group string
	flat, cum   float64 // % of total
}

// startS5Profile starts the process's CPU profile into path.
func startS5Profile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// profGroups maps a function to the part of the system it belongs to, by
// its package path; the first prefix that matches wins.
var profGroups = []struct{ prefix, group string }{
	{"github.com/interlockraft/interlock/scheduler", "scheduler"},
	{"github.com/interlockraft/interlock/fsm", "fsm (state machine)"},
	{"github.com/interlockraft/interlock/", "cluster (batcher, claims, transport)"},
	{"github.com/hashicorp/raft-boltdb", "bolt (Raft log)"},
	{"go.etcd.io/bbolt", "bolt (Raft log)"},
	{"github.com/boltdb/bolt", "bolt (Raft log)"},
	{"github.com/hashicorp/raft-wal", "raft-wal (Raft log)"},
	{"github.com/hashicorp/raft.", "hashicorp/raft"},
	{"github.com/hashicorp/go-msgpack", "msgpack (encoding)"},
	{"github.com/hashicorp/memberlist", "memberlist (gossip)"},
	{"main.", "bench harness (recorder)"},
	{"syscall.", "system calls (fsync, network)"},
	{"internal/runtime/syscall", "system calls (fsync, network)"},
	{"internal/poll.", "system calls (fsync, network)"},
}

// gcRoots are the runtime functions whose callees are garbage collection.
var gcRoots = []string{"runtime.gcBgMarkWorker", "runtime.gcAssistAlloc", "runtime.bgsweep", "runtime.bgscavenge"}

func groupOf(fn string) string {
	for _, g := range profGroups {
		if strings.HasPrefix(fn, g.prefix) {
			return g.group
		}
	}
	// Assembly helpers (memeqbody, aeshashbody) have no package.
	if strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "internal/runtime/") || !strings.Contains(fn, ".") {
		return groupRuntime
	}
	// A module path starts with a domain; the standard library's do not.
	if first, _, slash := strings.Cut(fn, "/"); !slash || !strings.Contains(first, ".") {
		return groupStd
	}
	return "other"
}

const (
	groupGC      = "Go garbage collection"
	groupRuntime = "Go runtime (maps, allocation, goroutines, timers)"
	groupStd     = "Go standard library (net, sync, time, ...)"
)

// ownedBy reports whether a group is a part of the system in its own right,
// rather than the runtime or library code that the parts call.
func ownedBy(g string) bool { return g != groupRuntime && g != groupStd && g != "other" }

// profSample is one stack of a profile and the CPU it was seen on.
type profSample struct {
	d      time.Duration
	frames []string // leaf first
}

// readTraces runs `go tool pprof -traces` on path and parses its stacks.
func readTraces(path string) ([]profSample, error) {
	out, err := exec.Command("go", "tool", "pprof", "-traces", path).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof -traces: %v", err)
	}
	var samples []profSample
	var cur *profSample
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----------+") {
			cur = nil
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if cur == nil {
			// The first line of a stack: its CPU, then the leaf.
			d, err := time.ParseDuration(f[0])
			if err != nil || len(f) < 2 {
				continue // the header
			}
			samples = append(samples, profSample{d: d, frames: []string{f[1]}})
			cur = &samples[len(samples)-1]
			continue
		}
		// A caller, perhaps followed by "(inline)".
		cur.frames = append(cur.frames, f[0])
	}
	return samples, sc.Err()
}

// summarise fills p's shares from the profile's stacks.
func (p *s5Profile) summarise(samples []profSample) {
	flatFn, cumFn := map[string]time.Duration{}, map[string]time.Duration{}
	flatG, cumG := map[string]time.Duration{}, map[string]time.Duration{}
	attr := map[string]time.Duration{}
	for _, s := range samples {
		owner := ""
		for _, fr := range s.frames {
			if g := groupOf(fr); ownedBy(g) {
				owner = g
				break
			}
		}
		p.total += s.d
		gc := false
		seenFn, seenG := map[string]bool{}, map[string]bool{}
		for _, fr := range s.frames {
			for _, r := range gcRoots {
				if fr == r {
					gc = true
				}
			}
			if !seenFn[fr] {
				seenFn[fr] = true
				cumFn[fr] += s.d
			}
			if g := groupOf(fr); !seenG[g] {
				seenG[g] = true
				cumG[g] += s.d
			}
		}
		if gc {
			cumG[groupGC] += s.d
			if owner == "" {
				owner = groupGC
			}
		}
		if owner == "" {
			owner = groupRuntime + " on its own"
		}
		attr[owner] += s.d
		leaf := s.frames[0]
		flatFn[leaf] += s.d
		g := groupOf(leaf)
		if gc && strings.HasPrefix(leaf, "runtime.") {
			g = groupGC
		}
		flatG[g] += s.d
	}
	if p.total == 0 {
		return
	}
	pct := func(d time.Duration) float64 { return float64(d) / float64(p.total) * 100 }
	p.attributed = map[string]float64{}
	for g, d := range attr {
		p.attributed[g] = pct(d)
	}
	for g, d := range flatG {
		p.groups = append(p.groups, profShare{name: g, flat: pct(d), cum: pct(cumG[g])})
	}
	sort.Slice(p.groups, func(i, j int) bool { return p.groups[i].flat > p.groups[j].flat })
	for g, d := range cumG {
		p.cumGroups = append(p.cumGroups, profShare{name: g, flat: pct(flatG[g]), cum: pct(d)})
	}
	sort.Slice(p.cumGroups, func(i, j int) bool { return p.cumGroups[i].cum > p.cumGroups[j].cum })
	for fn, d := range flatFn {
		p.top = append(p.top, profFunc{name: fn, group: groupOf(fn), flat: pct(d), cum: pct(cumFn[fn])})
	}
	sort.Slice(p.top, func(i, j int) bool {
		if p.top[i].flat != p.top[j].flat {
			return p.top[i].flat > p.top[j].flat
		}
		return p.top[i].name < p.top[j].name
	})
	if len(p.top) > 10 {
		p.top = p.top[:10]
	}
}

// share returns the cumulative share of group g, or 0.
func (p *s5Profile) share(g string) float64 {
	for _, s := range p.cumGroups {
		if s.name == g {
			return s.cum
		}
	}
	return 0
}

func (r *report) writeS5Profile(w writer) {
	p := r.s5prof
	if p == nil {
		return
	}
	w("### Where the time goes at %s jobs\n\n", commas(int64(p.jobs)))
	if p.err != "" {
		w("The profile could not be taken or read: %s.\n\n", p.err)
		return
	}
	capacity := float64(r.machine.nproc) * 100
	w("A CPU profile (runtime/pprof, 100 samples a second) of the bench process over the %s measurement window of the last repetition at %s jobs: the three nodes, their schedulers, the jobs' functions and the bench's recorder. In that window the process used **%s%% of one core, of the %s%% the machine has**; its p99 lateness was %s ms with %s missed ticks. The profile holds %s of CPU.\n\n",
		p.window, commas(int64(p.jobs)), num(p.cpu), num(capacity), num(ms(p.p99)), commas(int64(p.missed)), p.total.Round(10*time.Millisecond))
	secs := p.window.Seconds()
	cpe := "–"
	if p.batched > 0 {
		cpe = num(float64(p.commands) / float64(p.batched))
	}
	w("Raft in the same window: **%s entries/s** applied on the leader (every entry), of which %s/s were group-commit entries carrying **%s commands per entry** (%s commands/s; a command is one node's batch of claims, a lock operation, a run-lease update, ...), for %s runs due per second.\n\n",
		num(float64(p.entries)/secs), num(float64(p.batched)/secs), cpe, num(float64(p.commands)/secs), commas(int64(p.jobs)))
	w("By part of the system. *Attributed* gives each sample to the innermost part on its stack, so runtime and library work (map lookups, allocation, locks) counts for the part that called it, and the column sums to 100%%; *flat* is CPU in the part's own functions; *cum* is the share of samples with any of its functions on the stack, so it overlaps:\n\n")
	w("| part | attributed %% | flat %% | cum %% |\n|---|---|---|---|\n")
	for _, g := range p.cumGroups {
		a := "–"
		if v, ok := p.attributed[g.name]; ok {
			a = num(v)
		}
		w("| %s | %s | %s | %s |\n", g.name, a, num(g.flat), num(g.cum))
	}
	if v, ok := p.attributed[groupRuntime+" on its own"]; ok {
		w("| %s on its own (no part of the system on the stack) | %s | – | – |\n", groupRuntime, num(v))
	}
	w("\nTop functions by flat CPU:\n\n| function | part | flat %% | cum %% |\n|---|---|---|---|\n")
	for _, f := range p.top {
		w("| `%s` | %s | %s | %s |\n", f.name, f.group, num(f.flat), num(f.cum))
	}
	w("\n")
	// What blocks the aim, from the figures above.
	type kv struct {
		k string
		v float64
	}
	var att []kv
	for k, v := range p.attributed {
		att = append(att, kv{k, v})
	}
	sort.Slice(att, func(i, j int) bool { return att[i].v > att[j].v })
	var parts []string
	for _, a := range att {
		if len(parts) == 4 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %s%%", a.k, num(a.v)))
	}
	aim := s5AimFor(p.jobs)
	verdict := "met"
	if ms(p.p99) > aim || p.missed > 0 {
		verdict = "missed"
	}
	raft := fmt.Sprintf("Raft committed %s entries/s in the window, each carrying on average %s runs' claims", num(float64(p.entries)/secs), num(float64(p.runs)/math.Max(1, float64(p.commands))))
	if il := findS2(r.s2, sysInterlock); il != nil && len(il.parRate) > 0 {
		raft += fmt.Sprintf(" (for scale: the lock benchmark above drove %s Lock+Unlock pairs/s, group-committed, through the same Raft and disk)", num(il.parRate.median()))
	}
	burst := ""
	if p.burst.ticks > 0 {
		burst = fmt.Sprintf(" In the 200 ms after each instant the process used, averaged over the window's %d ticks (CPU time from getrusage every %s): %s; %d of the %d slots of %s were at 90%% of the %s%% or more. ", p.burst.ticks, burstSlot, p.burst.describe(), p.burst.saturatedSlots(capacity, 0.9), burstSlots, burstSlot, num(capacity))
	}
	if p.cpu >= 0.85*capacity {
		w("**What blocks the %s-jobs aim (p99 ≤ %s ms, no missed tick; %s in this repetition): CPU.** The three nodes in one process used %s%% of the %s%% that %d cores give, so ticks wait for a core.%s%s. The CPU goes, by attributed share, to: %s.\n\n",
			commas(int64(p.jobs)), num(aim), verdict, num(p.cpu), num(capacity), r.machine.nproc, burst, raft, strings.Join(parts, ", "))
	} else {
		w("**What blocks the %s-jobs aim (p99 ≤ %s ms, no missed tick; %s in this repetition)**: over the whole window the three nodes in one process used %s%% of the %s%% that %d cores give, but every job fires at the same instant, so the work comes in a burst.%s%s. The CPU goes, by attributed share, to: %s.\n\n",
			commas(int64(p.jobs)), num(aim), verdict, num(p.cpu), num(capacity), r.machine.nproc, burst, raft, strings.Join(parts, ", "))
	}
}
