package scheduler

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/interlockraft/interlock/fsm"
)

// Prometheus metrics of the scheduler's jobs (docs/operations.md lists
// them). The counters that Stats already keeps are read when the registry
// is scraped; only each run's end updates a counter and two histograms.
// Several Schedulers may register with one registry: the second finds the
// first's collector and joins it, since job names are unique on a node.

var (
	descSkipped = prometheus.NewDesc("interlock_job_skipped_total",
		"Ticks this node did not claim because the job's previous run was still going here.", []string{"job"}, nil)
	descMissed = prometheus.NewDesc("interlock_job_missed_total",
		"Ticks that, as far as this node can tell, ran on no node.", []string{"job"}, nil)
	descRetries = prometheus.NewDesc("interlock_job_retries_total",
		"Attempts after the first that started here (Job.Retries).", []string{"job"}, nil)
	descClaims = prometheus.NewDesc("interlock_job_claims_total",
		"Claims this node made for the job's ticks, by outcome: granted (a run started here), refused (the tick expired, or was superseded by a later tick granted first, or the claim was early or invalid), failed (no committed answer before the tick's start deadline), or lost to another node: taken, busy (its previous run still holds its lease), duplicate, paused.",
		[]string{"job", "outcome"}, nil)
	descRunning = prometheus.NewDesc("interlock_job_running",
		"Runs of the job going on this node now.", []string{"job"}, nil)
)

// schedCollector is the collector of every Scheduler registered with one
// registry. Its methods are safe for concurrent use.
type schedCollector struct {
	runs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	lateness *prometheus.HistogramVec

	mu     sync.Mutex
	scheds []*Scheduler
	// lost counts claims refused for another node's sake, which Stats does
	// not keep, by lostKey.
	lost sync.Map
}

// lostKey names one counter of schedCollector.lost.
type lostKey struct{ job, outcome string }

func newSchedCollector() *schedCollector {
	return &schedCollector{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "interlock_job_runs_total",
			Help: "Runs of the job that ended on this node, by result (success, error, panic); a run with retries counts once, with its last attempt's result.",
		}, []string{"job", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "interlock_job_run_duration_seconds",
			Help:    "Time from a run's start on this node to its end, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 11),
		}, []string{"job"}),
		lateness: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "interlock_job_lateness_seconds",
			Help:    "Time from a tick's scheduled instant to the start of its run on this node (Job.Jitter included).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"job"}),
	}
}

// registerMetrics registers s's metrics with reg, or joins the collector
// another Scheduler registered there. newFromOptions calls it; a failure
// becomes s.err, which Add and Run return.
func (s *Scheduler) registerMetrics(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	c := newSchedCollector()
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		existing, ok := (*schedCollector)(nil), false
		if errors.As(err, &are) {
			existing, ok = are.ExistingCollector.(*schedCollector)
		}
		if !ok {
			if s.err == nil {
				s.err = fmt.Errorf("scheduler: Options.Registerer: register metrics: %w; another collector uses the interlock_job_ names in this registry", err)
			}
			return
		}
		c = existing
	}
	c.mu.Lock()
	c.scheds = append(c.scheds, s)
	c.mu.Unlock()
	s.metrics = c
}

// Describe implements prometheus.Collector.
func (c *schedCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSkipped, descMissed, descRetries, descClaims, descRunning} {
		ch <- d
	}
	c.runs.Describe(ch)
	c.duration.Describe(ch)
	c.lateness.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *schedCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	c.mu.Lock()
	scheds := append([]*Scheduler(nil), c.scheds...)
	c.mu.Unlock()
	for _, s := range scheds {
		s.mu.Lock()
		for name, js := range s.jobs {
			counter(descSkipped, js.skipped.Load(), name)
			counter(descMissed, js.missed.Load(), name)
			counter(descRetries, js.retries.Load(), name)
			if s.coord != nil {
				counter(descClaims, js.runs.Load(), name, "granted")
				counter(descClaims, js.refused.Load(), name, "refused")
				counter(descClaims, js.claimFailures.Load(), name, "failed")
				for _, outcome := range lostOutcomes {
					var n uint64
					if v, ok := c.lost.Load(lostKey{name, outcome}); ok {
						n = v.(*atomic.Uint64).Load()
					}
					counter(descClaims, n, name, outcome)
				}
			}
			ch <- prometheus.MustNewConstMetric(descRunning, prometheus.GaugeValue, float64(js.active.Load()), name)
		}
		s.mu.Unlock()
	}
	c.runs.Collect(ch)
	c.duration.Collect(ch)
	c.lateness.Collect(ch)
}

// lostOutcomes are the outcomes of interlock_job_claims_total for a claim
// that lost to another node: the names of the state machine's reasons.
var lostOutcomes = []string{fsm.ReasonTaken.String(), fsm.ReasonBusy.String(), fsm.ReasonDuplicate.String(), fsm.ReasonPaused.String()}

// metricsClaimLost counts a claim of job that the state machine refused
// for reason, one of lostOutcomes, if s has metrics.
func (s *Scheduler) metricsClaimLost(job string, reason fsm.Reason) {
	if s.metrics == nil {
		return
	}
	v, _ := s.metrics.lost.LoadOrStore(lostKey{job, reason.String()}, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}

// metricsRunEnded records a run that started at start and ended with err,
// if s has metrics. Lateness is read on s's Clock, so a test's fake clock
// gives sensible values too.
func (s *Scheduler) metricsRunEnded(r Run, start time.Time, err error) {
	c := s.metrics
	if c == nil {
		return
	}
	took := time.Since(start)
	result := "success"
	switch {
	case errors.Is(err, ErrPanic):
		result = "panic"
	case err != nil:
		result = "error"
	}
	c.runs.WithLabelValues(r.Job, result).Inc()
	c.duration.WithLabelValues(r.Job).Observe(took.Seconds())
	c.lateness.WithLabelValues(r.Job).Observe(max(s.clock.Now().Add(-took).Sub(r.At), 0).Seconds())
}
