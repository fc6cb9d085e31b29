package clustertest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// leakGrace is how long VerifyTestMain lets goroutines wind down. memberlist's
// Shutdown does not wait for an in-flight probe, which ends by itself within
// one probe interval (1 s), longer than goleak's own retries.
const leakGrace = 5 * time.Second

// VerifyTestMain runs the package's tests and then fails the run if any
// goroutine outlives them by more than a few seconds. Use it as TestMain's
// body in packages that start nodes.
func VerifyTestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		var err error
		deadline := time.Now().Add(leakGrace)
		for {
			// hashicorp/raft never answers an Apply future still queued for
			// its state machine at shutdown; the node stops waiting for it
			// (cluster.waitFuture) rather than hang.
			if err = goleak.Find(goleak.IgnoreAnyFunction("github.com/interlockraft/interlock/cluster.waitFuture")); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines leaked after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
