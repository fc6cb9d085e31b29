package cluster

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestSuspectsDeposeReplacedLeader(t *testing.T) {
	t0 := time.Unix(1000, 0)
	cases := []struct {
		name     string
		leaders  []raft.ServerID // observed in order, at t0
		at       time.Duration   // when excluded is asked, after t0
		excluded []string
	}{
		{"no change", []raft.ServerID{"a", "a"}, 0, nil},
		{"first leader known", []raft.ServerID{"", "b"}, 0, nil},
		{"replaced during the hold", []raft.ServerID{"a", "", "b"}, deposedHold - time.Millisecond, []string{"a"}},
		{"hold over", []raft.ServerID{"a", "", "b"}, deposedHold, nil},
		{"never this node", []raft.ServerID{"self", "", "b"}, 0, nil},
		{"incarnation suffix stripped", []raft.ServerID{"a" + incarnationSep + "0123456789abcdef", "b"}, 0, []string{"a"}},
		{"latest replaced wins", []raft.ServerID{"a", "b", "c"}, 0, []string{"b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &suspects{self: "self"}
			for _, id := range tc.leaders {
				s.observeLeader(id, t0)
			}
			got := slices.Sorted(maps.Keys(s.excluded(nil, t0.Add(tc.at))))
			if !slices.Equal(got, tc.excluded) {
				t.Fatalf("excluded = %v, want %v", got, tc.excluded)
			}
		})
	}
}
