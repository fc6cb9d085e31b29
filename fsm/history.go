package fsm

import (
	"fmt"
	"slices"
	"unicode/utf8"
)

// HistoryLen is how many finished runs the state machine keeps per job,
// newest last. It is a constant, not a setting, because every replica
// must trim the same entries: a per-node setting would let replicas'
// states diverge.
const HistoryLen = 20

// MaxErrorBytes bounds the error text kept per run. Longer text is cut at
// a UTF-8 boundary and ends with "…".
const MaxErrorBytes = 256

// RunResult says how a finished run ended.
type RunResult uint8

const (
	// ResultSuccess means the job returned nil.
	ResultSuccess RunResult = 0
	// ResultError means the job returned an error.
	ResultError RunResult = 1
	// ResultPanic means the job panicked; the scheduler recovered it.
	ResultPanic RunResult = 2
)

// String returns the result's name, for logs and status pages.
func (r RunResult) String() string {
	switch r {
	case ResultSuccess:
		return "success"
	case ResultError:
		return "error"
	case ResultPanic:
		return "panic"
	default:
		return fmt.Sprintf("result(%d)", uint8(r))
	}
}

// HistoryEntry is one finished run, as the node that ran it reported it.
// Times are that node's clock, in Unix nanoseconds; the state machine
// stores them as given and never compares them with its own.
type HistoryEntry struct {
	// Node ran it. The state machine sets it to the reporting node.
	Node string
	// Token is the run's fencing token and Tick the tick index its claim
	// carried (negative for a run-now request).
	Token uint64
	Tick  int64
	// At is the run's scheduled instant.
	At int64
	// Start is when the run started, Duration how long it took.
	Start    int64
	Duration int64
	Result   RunResult
	// Error is the error's text, at most MaxErrorBytes; "" on success.
	Error string
}

// Finished is a finished run a node reports in a RunUpdate, to be kept in
// the job's history.
type Finished struct {
	Job   string
	Entry HistoryEntry
}

func encodeHistoryEntry(e *encoder, h HistoryEntry) {
	e.string(h.Node)
	e.uvarint(h.Token)
	e.varint(h.Tick)
	e.varint(h.At)
	e.varint(h.Start)
	e.varint(h.Duration)
	e.byte(byte(h.Result))
	e.string(h.Error)
}

func decodeHistoryEntry(d *decoder) HistoryEntry {
	return HistoryEntry{
		Node:     d.string(),
		Token:    d.uvarint(),
		Tick:     d.varint(),
		At:       d.varint(),
		Start:    d.varint(),
		Duration: d.varint(),
		Result:   RunResult(d.byte()),
		Error:    d.string(),
	}
}

// historyEntryMin is the fewest bytes an encoded HistoryEntry takes.
const historyEntryMin = 8

// truncateError cuts s to at most MaxErrorBytes, at a rune boundary, so
// that the bound holds whatever a node sends.
func truncateError(s string) string {
	if len(s) <= MaxErrorBytes {
		return s
	}
	const ellipsis = "…"
	cut := MaxErrorBytes - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// recordLocked appends a finished run to its job's history, keeping the
// newest HistoryLen. A run of a job the state machine does not know (never
// granted, or forgotten) is dropped, so reports cannot grow the state
// without bound.
func (f *FSM) recordLocked(node string, fin Finished) {
	if _, ok := f.jobs[fin.Job]; !ok {
		return
	}
	h := fin.Entry
	h.Node = node
	h.Error = truncateError(h.Error)
	list := f.history[fin.Job]
	switch {
	case len(list) == HistoryLen:
		// In place, and the map keeps the same slice: every reader copies
		// under f.mu, so nobody holds it, and tens of thousands of jobs
		// finish runs every second.
		copy(list, list[1:])
		list[len(list)-1] = h
		return
	case len(list) > HistoryLen:
		list = list[len(list)-HistoryLen:]
		copy(list, list[1:])
		list[len(list)-1] = h
	case list == nil:
		list = append(make([]HistoryEntry, 0, HistoryLen), h)
	default:
		list = append(list, h)
	}
	f.history[fin.Job] = list
}

// History returns the job's finished runs, oldest first, at most
// HistoryLen. The slice is the caller's.
func (f *FSM) History(job string) []HistoryEntry {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.Clone(f.history[job])
}
