package cluster

import (
	"errors"
	"net"
	"strings"
	"testing"

	sockaddr "github.com/hashicorp/go-sockaddr"
)

// fakeInterfaces is a machine with a loopback, a Swarm task's overlay
// interface (eth0), the docker_gwbridge side (eth1, the default route,
// which GetPrivateIP would pick), and an interface with two IPv4
// addresses.
func fakeInterfaces(t *testing.T) sockaddr.IfAddrs {
	t.Helper()
	mk := func(index int, name, cidr string, flags net.Flags) sockaddr.IfAddr {
		ip, err := sockaddr.NewIPAddr(cidr)
		if err != nil {
			t.Fatalf("%s: %v", cidr, err)
		}
		return sockaddr.IfAddr{SockAddr: ip, Interface: net.Interface{Index: index, Name: name, Flags: flags}}
	}
	up := net.FlagUp | net.FlagBroadcast | net.FlagMulticast
	return sockaddr.IfAddrs{
		mk(1, "lo", "127.0.0.1/8", net.FlagUp|net.FlagLoopback),
		mk(1, "lo", "::1/128", net.FlagUp|net.FlagLoopback),
		mk(2, "eth0", "10.0.1.7/24", up),
		mk(2, "eth0", "fe80::42:aff:fe00:107/64", up),
		mk(3, "eth1", "172.18.0.4/16", up),
		mk(4, "multi", "192.168.5.10/24", up),
		mk(4, "multi", "192.168.6.10/24", up),
		mk(5, "v6only", "fe80::1/64", up),
		mk(5, "v6only", "2001:db8::5/64", up),
	}
}

// TestResolveAddrSpec is the table of what BindAddr and AdvertiseAddr
// accept: an IP, an interface name, or a go-sockaddr template, with or
// without a port; and the errors, which name the field, for a template
// that fails, yields nothing or yields several addresses.
func TestResolveAddrSpec(t *testing.T) {
	ifs := fakeInterfaces(t)
	interfaces := func() (sockaddr.IfAddrs, error) { return ifs, nil }
	cases := []struct {
		name, spec string
		want       string // "" means an error is expected
		errHas     string // must appear in the error
	}{
		{"ip and port", "10.9.9.9:7000", "10.9.9.9:7000", ""},
		{"ip without port gets the default", "10.9.9.9", "10.9.9.9:7946", ""},
		{"empty host listens everywhere", ":7000", ":7000", ""},
		{"ipv6", "[2001:db8::9]:7000", "[2001:db8::9]:7000", ""},
		{"interface name", "eth0", "10.0.1.7:7946", ""},
		{"interface name and port", "eth0:7000", "10.0.1.7:7000", ""},
		{"interface prefers ipv4 over link-local ipv6", "lo:1", "127.0.0.1:1", ""},
		{"ipv6-only interface skips link-local", "v6only:1", "[2001:db8::5]:1", ""},
		{"interface with two addresses", "multi", "", "yields 2 addresses (192.168.5.10 192.168.6.10)"},
		{"template on the interface list", `{{ . | include "name" "^eth0$" | include "type" "ipv4" | attr "address" }}`, "10.0.1.7:7946", ""},
		{"template with port", `{{ . | include "name" "^eth0$" | include "type" "ipv4" | attr "address" }}:7000`, "10.0.1.7:7000", ""},
		{"template picking a network", `{{ . | include "network" "172.16.0.0/12" | attr "address" }}`, "172.18.0.4:7946", ""},
		{"template yielding several", `{{ . | include "type" "ipv4" | exclude "flags" "loopback" | join "address" " " }}`, "", "yields 4 addresses"},
		{"template yielding nothing", `{{ . | include "name" "^wlan9$" | attr "address" }}`, "", "yields no address"},
		{"template that does not parse", `{{ GetInterfaceIP "eth0" `, "", "no closing }}"},
		{"template with an unknown function", `{{ NoSuchFunc }}`, "", "go-sockaddr template"},
		{"template yielding a non-IP", `{{ "not-an-ip" }}`, "", "not an IP address"},
		{"junk after the template", `{{ . | attr "address" }}x`, "", "is not :port"},
		{"bad port", "eth0:99999", "", "port"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveAddrSpec("AdvertiseAddr", tc.spec, "7946", interfaces)
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Fatalf("resolveAddrSpec(%q) = %q, %v; want %q", tc.spec, got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("resolveAddrSpec(%q) = %q, want an error containing %q", tc.spec, got, tc.errHas)
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "AdvertiseAddr") || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("resolveAddrSpec(%q) error %q: want ErrInvalidConfig naming AdvertiseAddr and containing %q", tc.spec, err, tc.errHas)
			}
		})
	}
}

// TestConfigResolvesAddressTemplates runs the real path through
// withDefaults on this machine: templates are resolved against its own
// interfaces, a port-less AdvertiseAddr takes BindAddr's port, and a
// failure names the field.
func TestConfigResolvesAddressTemplates(t *testing.T) {
	base := Config{NodeName: "a", RaftAddr: "127.0.0.1:7947", BootstrapExpect: 1}

	c := base
	c.BindAddr = `{{ GetAllInterfaces | include "flags" "loopback" | include "type" "ipv4" | attr "address" }}:7100`
	c.AdvertiseAddr = "lo"
	got, err := c.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if got.BindAddr != "127.0.0.1:7100" || got.AdvertiseAddr != "127.0.0.1:7100" {
		t.Fatalf("BindAddr %q, AdvertiseAddr %q; want 127.0.0.1:7100 for both", got.BindAddr, got.AdvertiseAddr)
	}

	c = base
	c.BindAddr = "127.0.0.1:7100"
	// Loopback is not forwardable, so GetInterfaceIP finds nothing on lo.
	c.AdvertiseAddr = `{{ GetInterfaceIP "lo" }}`
	if _, err := c.withDefaults(); err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "AdvertiseAddr") || !strings.Contains(err.Error(), "no address") {
		t.Fatalf("got %v, want ErrInvalidConfig naming AdvertiseAddr: no address", err)
	}

	c = base
	c.BindAddr = "no-such-interface-or-host.invalid:7100"
	if _, err := c.withDefaults(); err == nil || !strings.Contains(err.Error(), "BindAddr") || !strings.Contains(err.Error(), "network interface") {
		t.Fatalf("got %v, want an error naming BindAddr that lists what it may be", err)
	}
}
