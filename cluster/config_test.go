package cluster

import (
	"context"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestConfigValidation(t *testing.T) {
	valid := Config{NodeName: "a", BindAddr: "127.0.0.1:7946", RaftAddr: "127.0.0.1:7947", BootstrapExpect: 1}
	cases := []struct {
		name  string
		edit  func(c *Config)
		field string // must appear in the error
	}{
		{"bad bind addr", func(c *Config) { c.BindAddr = "nonsense" }, "BindAddr"},
		{"bad bind port", func(c *Config) { c.BindAddr = "127.0.0.1:99999" }, "BindAddr"},
		{"bad raft addr", func(c *Config) { c.RaftAddr = "127.0.0.1" }, "RaftAddr"},
		{"bad advertise addr", func(c *Config) { c.AdvertiseAddr = "x" }, "AdvertiseAddr"},
		{"negative expect", func(c *Config) { c.BootstrapExpect = -1 }, "BootstrapExpect"},
		{"no way to form a cluster", func(c *Config) { c.BootstrapExpect = 0 }, "Join"},
		{"timings out of order", func(c *Config) { c.HeartbeatTimeout = time.Second; c.ElectionTimeout = 100 * time.Millisecond }, "ElectionTimeout"},
		{"lease above heartbeat", func(c *Config) { c.LeaderLeaseTimeout = 2 * time.Second }, "LeaderLeaseTimeout"},
		{"unknown log store", func(c *Config) { c.LogStore = LogStore(7) }, "LogStore"},
		{"bad key length", func(c *Config) { c.SecretKey = []byte("short") }, "SecretKey"},
		{"negative voters", func(c *Config) { c.MaxVoters = -1 }, "MaxVoters"},
		{"lease below raft's floor", func(c *Config) { c.LeaderLeaseTimeout = time.Millisecond }, "LeaderLeaseTimeout"},
		{"heartbeat below raft's floor", func(c *Config) { c.LeaderLeaseTimeout, c.HeartbeatTimeout = time.Millisecond, time.Millisecond }, "HeartbeatTimeout"},
	}
	if _, err := valid.withDefaults(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid
			tc.edit(&c)
			_, err := c.withDefaults()
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("got %v, want ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %q does not name %s", err, tc.field)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := Config{BootstrapExpect: 1}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeName == "" || c.ClusterName != DefaultClusterName || c.HeartbeatTimeout != DefaultHeartbeatTimeout ||
		c.ElectionTimeout != DefaultElectionTimeout || c.LeaderLeaseTimeout != DefaultLeaderLeaseTimeout ||
		c.MaxVoters != DefaultMaxVoters || c.Logger == nil {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestAdvertiseRaftAddr(t *testing.T) {
	cases := []struct {
		configured string
		gossipIP   string
		want       string
		wantErr    bool
	}{
		{"10.0.0.5:7947", "10.0.0.9", "10.0.0.5:7947", false},
		{":7947", "10.0.0.9", "10.0.0.9:7947", false},
		{"0.0.0.0:7947", "10.0.0.9", "10.0.0.9:7947", false},
		{":7947", "0.0.0.0", "", true},
	}
	for _, tc := range cases {
		got, err := advertiseRaftAddr(tc.configured, nil, net.ParseIP(tc.gossipIP))
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("advertiseRaftAddr(%q, %s) = %q, %v; want %q (error %v)", tc.configured, tc.gossipIP, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestConfigDurationFields has one row per duration field of Config: a value
// that would crash or wedge the node (a negative ReconcileInterval used to
// panic a background time.NewTicker after passing validation) must be
// refused by name, with the fix in the message.
func TestConfigDurationFields(t *testing.T) {
	valid := Config{NodeName: "a", BindAddr: "127.0.0.1:7946", RaftAddr: "127.0.0.1:7947", BootstrapExpect: 1}
	cases := []struct {
		field string
		edit  func(c *Config)
		fix   string // must appear in the error; "" means the value is accepted
	}{
		{"JoinTimeout", func(c *Config) { c.JoinTimeout = -time.Second }, "use 0 to keep retrying"},
		{"HeartbeatTimeout", func(c *Config) { c.HeartbeatTimeout = -time.Second }, "at least 5ms"},
		{"ElectionTimeout", func(c *Config) { c.ElectionTimeout = -time.Second }, "at least 5ms"},
		{"LeaderLeaseTimeout", func(c *Config) { c.LeaderLeaseTimeout = -time.Second }, "at least 5ms"},
		{"ReconcileInterval", func(c *Config) { c.ReconcileInterval = -time.Second }, "use 0 for the default (2s)"},
		{"DeadServerTimeout", func(c *Config) { c.DeadServerTimeout = -time.Second }, "set DisableDeadServerCleanup"},
		{"ProposeTimeout", func(c *Config) { c.ProposeTimeout = -time.Second }, "use 0 for the default (5s)"},
		{"LeaveTimeout", func(c *Config) { c.LeaveTimeout = -time.Second }, "use 0 for the default (5s)"},
		{"ServerStabilizationTime", func(c *Config) { c.ServerStabilizationTime = -time.Second }, "use 0 for the default (10s)"},
		{"ReconnectInterval", func(c *Config) { c.ReconnectInterval = -time.Second }, "use 0 for the default (2s)"},
		{"RejoinInterval", func(c *Config) { c.RejoinInterval = -time.Second }, "use 0 for the default (30s)"},
		{"ReconnectTimeout", func(c *Config) { c.ReconnectTimeout = -time.Second }, "use 0 for the default (24h0m0s)"},
	}
	covered := make(map[string]bool)
	for _, tc := range cases {
		covered[tc.field] = true
		t.Run(tc.field, func(t *testing.T) {
			c := valid
			tc.edit(&c)
			_, err := c.withDefaults()
			if tc.fix == "" {
				if err != nil {
					t.Fatalf("negative %s refused: %v", tc.field, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("negative %s: got %v, want ErrInvalidConfig", tc.field, err)
			}
			if !strings.HasPrefix(strings.TrimPrefix(err.Error(), ErrInvalidConfig.Error()+": "), tc.field+" is ") {
				t.Fatalf("error %q does not start by naming %s", err, tc.field)
			}
			if !strings.Contains(err.Error(), tc.fix) {
				t.Fatalf("error %q does not say how to fix it (%q)", err, tc.fix)
			}
		})
	}
	for _, name := range durationFieldNames() {
		if !covered[name] {
			t.Errorf("Config.%s is a duration with no row in this test; add one", name)
		}
	}
}

// TestConfigEveryDurationFieldHasARule keeps Config.durations complete: a
// duration field added to Config without a validation rule fails here.
func TestConfigEveryDurationFieldHasARule(t *testing.T) {
	ruled := make(map[string]bool)
	for _, r := range (Config{}).durations() {
		ruled[r.name] = true
	}
	for _, name := range durationFieldNames() {
		if !ruled[name] {
			t.Errorf("Config.%s is a time.Duration with no row in Config.durations; add its rule", name)
		}
	}
}

// TestConfigZeroDurationsGetDefaults checks the other half of the rule
// for durations: zero means the documented default, the one named in the
// field's fix text.
func TestConfigZeroDurationsGetDefaults(t *testing.T) {
	c, err := Config{NodeName: "a", BindAddr: "127.0.0.1:7946", RaftAddr: "127.0.0.1:7947", BootstrapExpect: 1}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	got := reflect.ValueOf(c)
	for _, r := range c.durations() {
		if v := time.Duration(got.FieldByName(r.name).Int()); v != r.def {
			t.Errorf("zero %s became %s; want its default %s", r.name, v, r.def)
		}
		if r.def != 0 && !strings.Contains(r.fix, "default ("+r.def.String()+")") {
			t.Errorf("%s's fix %q does not state its default %s", r.name, r.fix, r.def)
		}
	}
	if c.DisableDeadServerCleanup {
		t.Error("dead-server cleanup is off by default")
	}
}

// TestStartRefusesNegativeReconcileInterval is the reported crash: Start
// must return the error instead of starting a node whose maintenance loop
// panics.
func TestStartRefusesNegativeReconcileInterval(t *testing.T) {
	n, err := Start(context.Background(), Config{NodeName: "a", BindAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", BootstrapExpect: 1, ReconcileInterval: -time.Second})
	if err == nil {
		n.Shutdown(context.Background())
		t.Fatal("Start accepted ReconcileInterval -1s")
	}
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "ReconcileInterval") {
		t.Fatalf("got %v, want ErrInvalidConfig naming ReconcileInterval", err)
	}
}

// durationFieldNames returns the names of Config's time.Duration fields.
func durationFieldNames() []string {
	var names []string
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		if f := typ.Field(i); f.Type == reflect.TypeFor[time.Duration]() {
			names = append(names, f.Name)
		}
	}
	return names
}
