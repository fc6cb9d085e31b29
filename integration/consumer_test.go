package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestConsumerModule runs consumer/check.sh, which builds and runs a small
// program in a throwaway module outside the repository that requires
// Interlock with a replace for Interlock only, as an application would
// after `go get`. It fails if that module does not resolve, vet, build, or
// run a job and a lock on a one-node cluster (see consumer/main.go).
func TestConsumerModule(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", "consumer/check.sh")
	// The throwaway module and the program's data live under the test's
	// temp dir, which is outside the checkout and removed even if the
	// script is killed.
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if err != nil {
		t.Fatalf("consumer/check.sh: %v (context: %v)\n%s", err, ctx.Err(), out.String())
	}
	if !strings.Contains(out.String(), "\nconsumer: ok\n") {
		t.Fatalf("consumer/check.sh exited 0 without the program's \"consumer: ok\":\n%s", out.String())
	}
}
