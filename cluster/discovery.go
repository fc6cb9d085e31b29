package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Discovery turns the Join list into gossip peers. At Start, join retries
// until gossip holds a member other than this node: with a Swarm service's
// tasks.<service> or a Kubernetes headless service, replicas that start
// together often resolve the name to themselves alone, and contacting
// oneself is no join. After Start the reconnect loop (reconnect.go)
// resolves the names again for as long as the node runs.

// lookupHost resolves a Join name to addresses, through the test hook if
// one is set.
func (n *Node) lookupHost(ctx context.Context, host string) ([]string, error) {
	if n.cfg.lookupHost != nil {
		return n.cfg.lookupHost(ctx, host)
	}
	return net.DefaultResolver.LookupHost(ctx, host)
}

// resolveJoin expands the Join entries into host:port addresses. A DNS name
// yields one address per A or AAAA record, which is how a Swarm service
// (tasks.<service>) or a Kubernetes headless service finds its peers. It
// fails only if nothing resolved.
func (n *Node) resolveJoin(ctx context.Context) ([]string, error) {
	_, defPort, _ := splitHostPort(n.cfg.BindAddr)
	var out []string
	var lastErr error
	for _, e := range n.cfg.Join {
		host, port, err := net.SplitHostPort(e)
		if err != nil {
			host, port = e, strconv.Itoa(defPort)
		}
		if ip := net.ParseIP(host); ip != nil {
			out = append(out, net.JoinHostPort(host, port))
			continue
		}
		addrs, err := n.lookupHost(ctx, host)
		if err != nil {
			lastErr = fmt.Errorf("resolve join address %q: %w", e, err)
			continue
		}
		for _, a := range addrs {
			out = append(out, net.JoinHostPort(a, port))
		}
	}
	if len(out) == 0 && lastErr != nil {
		return nil, lastErr
	}
	return out, nil
}

// isSelf reports whether addr is this node's own gossip address: the one it
// advertises, or the one it is bound to.
func (n *Node) isSelf(addr string) bool {
	if addr == n.gossipAddr || addr == n.cfg.BindAddr {
		return true
	}
	// An unspecified bind address listens on every local IP.
	host, port, err := net.SplitHostPort(addr)
	bindHost, bindPort, _ := net.SplitHostPort(n.cfg.BindAddr)
	if err != nil || port != bindPort {
		return false
	}
	if b := net.ParseIP(bindHost); bindHost != "" && (b == nil || !b.IsUnspecified()) {
		return false
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range ifAddrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// seesPeer reports whether gossip holds a live member other than this node.
func (n *Node) seesPeer() bool { return n.ml.NumMembers() > 1 }

// join contacts the Join addresses until gossip holds another member, the
// join timeout passes, or ctx ends. A Join list that resolves to this node
// alone is retried like one that nobody answers, unless BootstrapExpect is
// 1: such a node may form its cluster alone, and the reconnect loop still
// finds peers that come later.
func (n *Node) join(ctx context.Context) error {
	if len(n.cfg.Join) == 0 {
		return nil
	}
	if n.cfg.JoinTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.JoinTimeout)
		defer cancel()
	}
	backoff := 100 * time.Millisecond
	var lastErr error
	for attempt := 1; ; attempt++ {
		addrs, err := n.resolveJoin(ctx)
		onlySelf := false
		if err == nil {
			var others []string
			for _, a := range addrs {
				if !n.isSelf(a) {
					others = append(others, a)
				}
			}
			onlySelf = len(others) == 0
			if !onlySelf {
				var joined int
				joined, err = n.ml.Join(others)
				if err == nil && joined == 0 {
					err = fmt.Errorf("no member answered")
				}
			}
		}
		if n.seesPeer() {
			n.logger.Debug("joined gossip", "attempt", attempt)
			return nil
		}
		// answered: a member took the join, but this node does not see it
		// alive yet (its state is still arriving). Not yet a problem.
		answered := err == nil && !onlySelf
		if answered {
			err = errors.New("a member answered the join, but gossip shows no live peer yet")
		}
		if onlySelf {
			if n.cfg.BootstrapExpect == 1 {
				n.logger.Debug("join list names only this node; forming the cluster alone", "join", n.cfg.Join)
				return nil
			}
			err = fmt.Errorf("the join list names only this node (%s) so far", n.gossipAddr)
		}
		lastErr = err
		if attempt == 1 || attempt%10 == 0 {
			if onlySelf || (answered && attempt < 10) {
				// The usual start of a service whose replicas start
				// together: not yet a problem.
				n.logger.Info("join found no other member yet, retrying", "join", n.cfg.Join, "attempt", attempt, "error", err)
			} else {
				n.logger.Warn("join failed, retrying", "join", n.cfg.Join, "attempt", attempt, "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w %v: %v (last error: %v); check that the addresses are right and that the members run with the same ClusterName and SecretKey", ErrJoin, n.cfg.Join, ctx.Err(), lastErr)
		case <-n.shutdownCh:
			return ErrShutdown
		case <-time.After(backoff):
		}
		if backoff < 2*time.Second {
			backoff *= 2
		}
	}
}
