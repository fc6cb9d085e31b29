package cluster_test

import (
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster/clustertest"
)

func TestMain(m *testing.M) {
	clustertest.VerifyTestMain(m)
}

func TestThreeNodesFormOneCluster(t *testing.T) {
	c := clustertest.MakeCluster(t, 3, clustertest.Options{})
	leader := c.Leader(10 * time.Second)
	leaders := 0
	for _, n := range c.Nodes {
		if n.IsLeader() {
			leaders++
		}
		servers, err := n.Servers()
		if err != nil {
			t.Fatal(err)
		}
		if len(servers) != 3 {
			t.Fatalf("%s sees %d servers, want 3: %+v", n.Name(), len(servers), servers)
		}
		if got := n.Leader(); got != c.Nodes[leader].Name() {
			t.Fatalf("%s thinks the leader is %q, want %q", n.Name(), got, c.Nodes[leader].Name())
		}
	}
	if leaders != 1 {
		t.Fatalf("%d nodes think they lead, want 1", leaders)
	}
}
