package integration

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// bootstrapServers matches the library's bootstrap log line and captures
// its server list, such as ["n0", "n1", "n2"].
var bootstrapServers = regexp.MustCompile(`bootstrapped cluster: .*servers=\[([^\]]*)\]`)

// TestConcurrentBootstrap starts three processes at once with -expect 3,
// twenty times on fresh ports and DataDirs: every time they form exactly
// one cluster (every node sees the same three voters and all three alive
// members) with one leader, and every node that bootstrapped did so with
// the same server list.
func TestConcurrentBootstrap(t *testing.T) {
	const rounds = 20
	begin := time.Now()
	var durations []time.Duration
	for round := range rounds {
		ok := t.Run(fmt.Sprintf("round%02d", round), func(t *testing.T) {
			start := time.Now()
			c := newCluster(t, 3, clusterOpts{})
			c.StartAll()
			leader := c.WaitLeader(15 * time.Second)
			durations = append(durations, time.Since(start))
			want := c.Names()

			leaders := 0
			for i := range 3 {
				st := c.MustStatus(i)
				if st.IsLeader {
					leaders++
				}
				if st.Leader != c.Name(leader) {
					t.Errorf("%s names leader %q, want %q", st.Name, st.Leader, c.Name(leader))
				}
				if got := st.ServerNames(); !slices.Equal(got, want) {
					t.Errorf("%s's Raft configuration is %v, want %v", st.Name, got, want)
				}
				for _, s := range st.Servers {
					if !s.Voter {
						t.Errorf("%s sees %s as a non-voter", st.Name, s.Name)
					}
				}
				eventually(t, 10*time.Second, func() bool {
					st := c.MustStatus(i)
					if !slices.Equal(st.MemberNames(), want) {
						return false
					}
					for _, m := range st.Members {
						if m.Status != "alive" {
							return false
						}
					}
					return true
				}, "%s's gossip never showed exactly %v alive", c.Name(i), want)
			}
			if leaders != 1 {
				t.Errorf("%d nodes say they lead, want 1", leaders)
			}

			// Every bootstrap used the same list: the three nodes.
			bootstrapped := 0
			wantList := `"` + strings.Join(want, `", "`) + `"`
			for i := range 3 {
				log := c.Logs(i)[0]
				if strings.Contains(log, "bootstrap failed") {
					t.Errorf("%s logged a failed bootstrap:\n%s", c.Name(i), grepLines(log, "bootstrap failed"))
				}
				for _, m := range bootstrapServers.FindAllStringSubmatch(log, -1) {
					bootstrapped++
					if m[1] != wantList {
						t.Errorf("%s bootstrapped with servers [%s], want [%s]", c.Name(i), m[1], wantList)
					}
				}
			}
			if bootstrapped == 0 {
				t.Errorf("no node logged %q", bootstrapLine)
			}
			c.KillAll()
		})
		if !ok {
			break
		}
	}
	slices.Sort(durations)
	if len(durations) > 0 {
		t.Logf("%d rounds in %s; start to agreed leader: min %s, median %s, max %s", len(durations), time.Since(begin).Round(time.Millisecond),
			durations[0].Round(time.Millisecond), durations[len(durations)/2].Round(time.Millisecond), durations[len(durations)-1].Round(time.Millisecond))
	}
}
