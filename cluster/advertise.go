package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	sockaddr "github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/go-sockaddr/template"
)

// BindAddr and AdvertiseAddr name the gossip address by IP, by a network
// interface's name, or by a go-sockaddr template, as Consul's and Nomad's
// bind and advertise settings do. Inside a container the interface or the
// template is what stays right across reschedules: the IP changes, and the
// default private IP may belong to the wrong network (docker_gwbridge in a
// Swarm task). Start resolves both to host:port once, before gossip starts.

// splitAddrSpec splits an address setting into its host part (an IP, an
// interface name, a host name or a template) and its port ("" when it has
// none). A template is everything up to its last "}}", so the colons and
// quotes inside it are not taken for a port.
func splitAddrSpec(spec string) (host, port string, err error) {
	if strings.Contains(spec, "{{") {
		end := strings.LastIndex(spec, "}}")
		if end < 0 {
			return "", "", errors.New("the template has no closing }}")
		}
		host, rest := spec[:end+2], spec[end+2:]
		switch {
		case rest == "":
			return host, "", nil
		case strings.HasPrefix(rest, ":"):
			port = rest[1:]
		default:
			return "", "", fmt.Errorf("%q after the template is not :port", rest)
		}
		if err := checkPort(port); err != nil {
			return "", "", err
		}
		return host, port, nil
	}
	h, p, splitErr := net.SplitHostPort(spec)
	if splitErr != nil {
		if spec == "" || strings.Contains(spec, ":") {
			return "", "", splitErr
		}
		return spec, "", nil // a bare IP, interface or host name
	}
	if err := checkPort(p); err != nil {
		return "", "", err
	}
	return h, p, nil
}

func checkPort(p string) error {
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return fmt.Errorf("port %q is not a number between 0 and 65535", p)
	}
	return nil
}

// resolveAddrs returns c with BindAddr and AdvertiseAddr resolved to
// IP:port (an empty bind host stays empty: all interfaces). A port-less
// BindAddr gets DefaultBindPort; a port-less AdvertiseAddr gets BindAddr's
// port.
func (c Config) resolveAddrs() (Config, error) {
	var ifs sockaddr.IfAddrs
	var ifsErr error
	loaded := false
	interfaces := func() (sockaddr.IfAddrs, error) {
		if !loaded {
			ifs, ifsErr = sockaddr.GetAllInterfaces()
			loaded = true
		}
		return ifs, ifsErr
	}
	bind, err := resolveAddrSpec("BindAddr", c.BindAddr, strconv.Itoa(DefaultBindPort), interfaces)
	if err != nil {
		return c, err
	}
	c.BindAddr = bind
	if c.AdvertiseAddr != "" {
		_, bindPort, _ := net.SplitHostPort(bind)
		adv, err := resolveAddrSpec("AdvertiseAddr", c.AdvertiseAddr, bindPort, interfaces)
		if err != nil {
			return c, err
		}
		c.AdvertiseAddr = adv
	}
	return c, nil
}

// resolveAddrSpec resolves one address setting to host:port. field names
// the setting in errors.
func resolveAddrSpec(field, spec, defPort string, interfaces func() (sockaddr.IfAddrs, error)) (string, error) {
	host, port, err := splitAddrSpec(spec)
	if err != nil {
		return "", fmt.Errorf("%w: %s %q: %v", ErrInvalidConfig, field, spec, err)
	}
	if port == "" {
		port = defPort
	}
	if host == "" || net.ParseIP(host) != nil {
		return net.JoinHostPort(host, port), nil
	}
	ifs, err := interfaces()
	if err != nil {
		return "", fmt.Errorf("%w: %s %q: list network interfaces: %v", ErrInvalidConfig, field, spec, err)
	}
	ip, err := resolveHost(host, ifs)
	if err != nil {
		return "", fmt.Errorf("%w: %s %q: %v", ErrInvalidConfig, field, spec, err)
	}
	return net.JoinHostPort(ip, port), nil
}

// resolveHost turns a template, an interface name or a host name into one
// IP, given the machine's interface addresses.
func resolveHost(host string, ifs sockaddr.IfAddrs) (string, error) {
	if strings.Contains(host, "{{") {
		out, err := template.ParseIfAddrs(host, ifs)
		if err != nil {
			return "", fmt.Errorf("go-sockaddr template: %v", err)
		}
		return oneIP(strings.Fields(out), "the template", "narrow it, for example with | limit 1 or a specific interface")
	}
	var named []string
	found := false
	for _, a := range ifs {
		if a.Name == host {
			found = true
			named = append(named, interfaceIP(a))
		}
	}
	if found {
		return oneIP(preferIPv4(named), "interface "+host, `pick one with a template such as {{ GetInterfaceIP "`+host+`" }}`)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		var names []string
		for _, a := range ifs {
			if !slices.Contains(names, a.Name) {
				names = append(names, a.Name)
			}
		}
		return "", fmt.Errorf("not an IP address, a network interface of this machine (%s), a go-sockaddr template, or a host name that resolves (%v)", strings.Join(names, ", "), err)
	}
	return oneIP(addrs, "host name "+host, "use an IP address, an interface name or a template")
}

// interfaceIP returns an interface address's IP, "" for a non-IP address.
func interfaceIP(a sockaddr.IfAddr) string {
	if ip := sockaddr.ToIPAddr(a.SockAddr); ip != nil {
		return (*ip).NetIP().String()
	}
	return ""
}

// preferIPv4 keeps an interface's IPv4 addresses if it has any, else its
// IPv6 addresses that are not link-local, which would need a zone to dial.
func preferIPv4(ips []string) []string {
	var v4, v6 []string
	for _, s := range ips {
		ip := net.ParseIP(s)
		switch {
		case ip == nil:
		case ip.To4() != nil:
			v4 = append(v4, s)
		case !ip.IsLinkLocalUnicast():
			v6 = append(v6, s)
		}
	}
	if len(v4) > 0 {
		return v4
	}
	return v6
}

// oneIP returns the only entry of ips, which must be an IP address.
func oneIP(ips []string, what, fix string) (string, error) {
	switch len(ips) {
	case 0:
		return "", fmt.Errorf("%s yields no address", what)
	case 1:
		if net.ParseIP(ips[0]) == nil {
			return "", fmt.Errorf("%s yields %q, which is not an IP address", what, ips[0])
		}
		return ips[0], nil
	default:
		return "", fmt.Errorf("%s yields %d addresses (%s), want one; %s", what, len(ips), strings.Join(ips, " "), fix)
	}
}
