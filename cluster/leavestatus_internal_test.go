package cluster

import (
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

// TestGoneMemberStatus checks how a member that gossip reports gone is
// classified: left if its last meta announced the leave, or if it asked this
// leader to remove it and nothing alive and not leaving was heard from it
// since; failed otherwise. The leave request matters because the Leaving
// meta travels by gossip and can reach the leader after the leave notice,
// or not at all (seen once under CI load).
func TestGoneMemberStatus(t *testing.T) {
	asked := time.Now()
	cases := []struct {
		name    string
		leaving bool // the member's last meta announced the leave
		asked   bool // it asked this leader to remove it
		// heard is what was last heard from it before the notice, if
		// anything: alive and not leaving, after or before its request.
		heard  string
		status MemberStatus
	}{
		{"crash", false, false, "", StatusFailed},
		{"meta announced the leave", true, false, "", StatusLeft},
		{"asked to leave, meta late", false, true, "", StatusLeft},
		{"asked to leave, heard alive before the request", false, true, "before", StatusLeft},
		{"asked to leave, then a new process under the name crashed", false, true, "after", StatusFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &gossipDelegate{events: make(chan struct{}, 1), lost: make(chan struct{}, 1), logger: hclog.NewNullLogger(), self: "self",
				askedToLeave: func(name string) time.Time {
					if tc.asked && name == "n2" {
						return asked
					}
					return time.Time{}
				}}
			switch tc.heard {
			case "before":
				d.members = map[string]Member{"n2": {Name: "n2", Status: StatusAlive, updated: asked.Add(-time.Second)}}
			case "after":
				d.members = map[string]Member{"n2": {Name: "n2", Status: StatusAlive, updated: asked.Add(time.Second)}}
			}
			b, err := json.Marshal(meta{Version: metaVersion, Cluster: "c", Leaving: tc.leaving})
			if err != nil {
				t.Fatal(err)
			}
			d.NotifyLeave(&memberlist.Node{Name: "n2", Addr: net.IPv4(127, 0, 0, 1), Port: 7946, Meta: b})
			if got := d.members["n2"].Status; got != tc.status {
				t.Fatalf("status %v, want %v", got, tc.status)
			}
		})
	}
}
