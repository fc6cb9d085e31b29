package integration

import (
	"testing"
	"time"
)

// TestCronJobsThreeNodes runs cron jobs (every second, and every other
// second with a 300ms body) beside an interval job on three node
// processes, kills a follower half way, and checks that no scheduled
// instant ran twice, that tokens grow, and that every run is on an instant
// of its spec. A cron run's Tick is its instant in Unix nanoseconds, so
// the (job, tick) duplicate check is a check by instant.
func TestCronJobsThreeNodes(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{Jobs: "c:cron=* * * * * *,d:cron=*/2 * * * * *:300ms,e:200ms"})
	leader := c.WaitLeader(10 * time.Second)
	c.WaitRuns(30*time.Second, 5, func(r Run) bool { return r.Job == "c" }, "of the every-second cron job")
	killAt := time.Now()
	follower := (leader + 1) % 3
	c.Kill(follower)
	runs := c.WaitRuns(30*time.Second, 5, func(r Run) bool { return r.Job == "c" && r.StartTime().After(killAt.Add(2*time.Second)) }, "of the cron job after a follower was killed")
	runs = c.WaitRuns(30*time.Second, countRuns(runs, func(r Run) bool { return r.Job == "d" })+2, func(r Run) bool { return r.Job == "d" }, "of the every-other-second cron job")
	checkRuns(t, runs)
	nodes := map[string]bool{}
	for _, r := range runs {
		at := time.Unix(0, r.At)
		switch r.Job {
		case "c", "d":
			if r.Tick != r.At {
				t.Errorf("%v: a cron run's Tick is not its instant", r)
			}
			if at.Truncate(time.Second) != at || (r.Job == "d" && at.Unix()%2 != 0) {
				t.Errorf("%v: not an instant of its spec", r)
			}
			nodes[r.Node] = true
		}
	}
	if len(nodes) < 2 {
		t.Errorf("cron runs ran on %v only; want them spread over the nodes", nodes)
	}
	t.Logf("%d runs, cron runs on %d nodes", len(runs), len(nodes))
}
