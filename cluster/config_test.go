package cluster

import (
	"errors"
	"net"
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
		{"bad key length", func(c *Config) { c.SecretKey = []byte("short") }, "SecretKey"},
		{"negative voters", func(c *Config) { c.MaxVoters = -1 }, "MaxVoters"},
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
