package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// settings is the service's configuration, read from the environment.
type settings struct {
	nodeName        string
	clusterName     string
	join            []string
	bootstrapExpect int
	maxVoters       int
	dataDir         string
	bindAddr        string
	advertiseAddr   string
	raftAddr        string
	statusAddr      string
	logLevel        hclog.Level
	logJSON         bool
	jobs            []jobSpec
	lockName        string
	lockEvery       time.Duration
	runFor          time.Duration
}

// jobSpec is one INTERLOCK_JOBS entry.
type jobSpec struct {
	name     string
	interval time.Duration
}

// defaultJobs are three jobs on different intervals, so a demo shows each
// one running once per tick on whichever replica wins the tick.
const defaultJobs = "heartbeat:1s,report:5s,cleanup:15s"

// loadSettings reads every INTERLOCK_* variable through getenv and returns
// the first unusable one as an error that names it and says what it takes.
func loadSettings(getenv func(string) string) (settings, error) {
	s := settings{
		nodeName:      getenv("INTERLOCK_NODE_NAME"),
		clusterName:   getenv("INTERLOCK_CLUSTER_NAME"),
		join:          splitList(getenv("INTERLOCK_JOIN")),
		dataDir:       getenv("INTERLOCK_DATA_DIR"),
		bindAddr:      orDefault(getenv("INTERLOCK_BIND_ADDR"), "0.0.0.0:7946"),
		advertiseAddr: getenv("INTERLOCK_ADVERTISE_ADDR"),
		raftAddr:      orDefault(getenv("INTERLOCK_RAFT_ADDR"), ":7947"),
		statusAddr:    getenv("INTERLOCK_STATUS_ADDR"),
		lockName:      orDefault(getenv("INTERLOCK_LOCK"), "maintenance"),
	}
	var err error
	if s.bootstrapExpect, err = intVar(getenv, "INTERLOCK_BOOTSTRAP_EXPECT", 3); err != nil {
		return s, err
	}
	if s.maxVoters, err = intVar(getenv, "INTERLOCK_MAX_VOTERS", 0); err != nil {
		return s, err
	}
	if s.lockEvery, err = durationVar(getenv, "INTERLOCK_LOCK_EVERY", 10*time.Second); err != nil {
		return s, err
	}
	if s.runFor, err = durationVar(getenv, "INTERLOCK_RUN_FOR", 0); err != nil {
		return s, err
	}
	level := orDefault(getenv("INTERLOCK_LOG_LEVEL"), "info")
	if s.logLevel = hclog.LevelFromString(level); s.logLevel == hclog.NoLevel {
		return s, fmt.Errorf("INTERLOCK_LOG_LEVEL=%q: use trace, debug, info, warn, error or off", level)
	}
	switch f := orDefault(getenv("INTERLOCK_LOG_FORMAT"), "text"); f {
	case "text":
	case "json":
		s.logJSON = true
	default:
		return s, fmt.Errorf("INTERLOCK_LOG_FORMAT=%q: use text or json", f)
	}
	if s.jobs, err = parseJobs(orDefault(getenv("INTERLOCK_JOBS"), defaultJobs)); err != nil {
		return s, err
	}
	return s, nil
}

// parseJobs reads "name:interval,name:interval".
func parseJobs(v string) ([]jobSpec, error) {
	var out []jobSpec
	seen := map[string]bool{}
	for _, e := range splitList(v) {
		name, iv, ok := strings.Cut(e, ":")
		d, err := time.ParseDuration(iv)
		if !ok || name == "" || err != nil || d <= 0 {
			return nil, fmt.Errorf("INTERLOCK_JOBS entry %q: want name:interval with a positive interval, such as report:5s", e)
		}
		if seen[name] {
			return nil, fmt.Errorf("INTERLOCK_JOBS: job %q is listed twice; give each job its own name", name)
		}
		seen[name] = true
		out = append(out, jobSpec{name: name, interval: d})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("INTERLOCK_JOBS is empty; list at least one job, such as report:5s")
	}
	return out, nil
}

func intVar(getenv func(string) string, key string, def int) (int, error) {
	v := getenv(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q: want a whole number of 0 or more", key, v)
	}
	return n, nil
}

func durationVar(getenv func(string) string, key string, def time.Duration) (time.Duration, error) {
	v := getenv(key)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q: want a duration of 0 or more, such as 10s", key, v)
	}
	return d, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// hostname is the default node name: in Swarm the stack file sets it to
// {{.Service.Name}}-{{.Task.Slot}}, in Kubernetes a StatefulSet pod's
// hostname is its stable pod name.
func hostname() string {
	h, _ := os.Hostname()
	return h
}
