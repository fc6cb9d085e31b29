package httpapi

import (
	"fmt"
	"net/http"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strconv"
	"time"
)

// The profile handlers are written against runtime/pprof rather than
// imported from net/http/pprof, whose init registers /debug/pprof/ on
// http.DefaultServeMux: importing this package must not expose profiles
// on an application's default mux. The routes and parameters are the
// same, so `go tool pprof http://host/debug/pprof/heap` works.

// maxProfileSeconds bounds a CPU profile or trace request.
const maxProfileSeconds = 60

func pprofIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	profiles := pprof.Profiles()
	sort.Slice(profiles, func(i, j int) bool { return profiles[i].Name() < profiles[j].Name() })
	fmt.Fprintln(w, "Profiles (append ?debug=1 for text):")
	for _, p := range profiles {
		fmt.Fprintf(w, "  %-14s %d\n", p.Name(), p.Count())
	}
	fmt.Fprintln(w, "  profile        CPU profile, ?seconds=N (default 30)")
	fmt.Fprintln(w, "  trace          execution trace, ?seconds=N (default 1)")
}

func pprofNamed(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("profile")
	p := pprof.Lookup(name)
	if p == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no profile %q; see /debug/pprof/ for the list", name))
		return
	}
	debug, _ := strconv.Atoi(r.URL.Query().Get("debug"))
	if debug > 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	}
	_ = p.WriteTo(w, debug)
}

// profileSeconds reads ?seconds=, or answers 400.
func profileSeconds(w http.ResponseWriter, r *http.Request, def int) (time.Duration, bool) {
	secs := def
	if v := r.URL.Query().Get("seconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > maxProfileSeconds {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("seconds=%q: give a whole number from 1 to %d", v, maxProfileSeconds))
			return 0, false
		}
		secs = n
	}
	return time.Duration(secs) * time.Second, true
}

// sleep waits d or until the client goes away.
func sleep(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

func pprofCPU(w http.ResponseWriter, r *http.Request) {
	d, ok := profileSeconds(w, r, 30)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := pprof.StartCPUProfile(w); err != nil {
		w.Header().Set("Content-Type", "application/json")
		writeError(w, http.StatusConflict, "could not start a CPU profile, another one is running: "+err.Error())
		return
	}
	sleep(r, d)
	pprof.StopCPUProfile()
}

func pprofTrace(w http.ResponseWriter, r *http.Request) {
	d, ok := profileSeconds(w, r, 1)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := trace.Start(w); err != nil {
		writeError(w, http.StatusConflict, "could not start a trace, another one is running: "+err.Error())
		return
	}
	sleep(r, d)
	trace.Stop()
}
