package gometricsbridge

import (
	"fmt"
	"sync"
	"time"

	metrics "github.com/hashicorp/go-metrics/compat"
	gmprom "github.com/hashicorp/go-metrics/compat/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

// Expiration is how long a bridged series stays after its last sample.
// go-metrics gauges are set only when something happens, so a series of a
// node that stopped disappears after this long rather than at once.
const Expiration = time.Minute

// sinkName is the name the sink describes itself with in a registry.
const sinkName = "interlock_gometrics_bridge"

var (
	// mu guards sinks and serializes the global's replacement.
	mu    sync.Mutex
	sinks []*gmprom.PrometheusSink
)

// Attach registers a Prometheus sink with reg and makes the go-metrics
// global send every sample to it as well as to the other attached sinks.
// The returned detach removes it from the global and unregisters it; it
// may be called more than once. Attach and detach are safe for concurrent
// use.
//
// While at least one sink is attached, the go-metrics global is this
// package's: a sink the program installed with go-metrics' NewGlobal
// before is replaced, and after the last detach the global discards
// samples again (go-metrics' own default).
func Attach(reg prometheus.Registerer) (detach func(), err error) {
	sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{
		Registerer: reg,
		Expiration: Expiration,
		Name:       sinkName,
	})
	if err != nil {
		return nil, fmt.Errorf("register the bridge of Raft's and memberlist's go-metrics: %w", err)
	}
	mu.Lock()
	sinks = append(sinks, sink)
	install()
	mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			for i, s := range sinks {
				if s == sink {
					sinks = append(sinks[:i:i], sinks[i+1:]...)
					break
				}
			}
			install()
			mu.Unlock()
			reg.Unregister(sink)
		})
	}, nil
}

// install points the go-metrics global at the attached sinks. The caller
// holds mu.
func install() {
	var sink metrics.MetricSink = &metrics.BlackholeSink{}
	if len(sinks) > 0 {
		fan := make(metrics.FanoutSink, len(sinks))
		for i, s := range sinks {
			fan[i] = s
		}
		sink = fan
	}
	conf := metrics.DefaultConfig("")
	// No hostname in the names (a scrape's target says which host), and
	// no runtime metrics: the Go collector of client_golang reports those,
	// and go-metrics' would need a goroutine per global.
	conf.EnableHostname = false
	conf.EnableHostnameLabel = false
	conf.EnableServiceLabel = false
	conf.EnableRuntimeMetrics = false
	// NewGlobal fails only on an invalid filter, and this config has none.
	_, _ = metrics.NewGlobal(conf, sink)
}
