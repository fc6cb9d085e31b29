package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
)

// lockedBuffer is a bytes.Buffer safe to write from the node's goroutines
// while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Split(bytes.TrimSpace(l.b.Bytes()), []byte("\n"))
}

// TestSlogReceivesNodeLogs starts a node that logs to a *slog.Logger: its
// Info line on start must arrive at the slog handler, at slog's Info, with
// the stable node key as an attribute, and no Debug line may pass an Info
// handler.
func TestSlogReceivesNodeLogs(t *testing.T) {
	var buf lockedBuffer
	ports := clustertest.FreePorts(t, 2)
	cfg := clustertest.Config(t, 0, ports[:1], ports[1])
	cfg.Logger = nil
	cfg.Slog = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	n, err := cluster.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	var ready bool
	for _, line := range buf.lines() {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("slog line %q: %v", line, err)
		}
		if rec["level"] == "DEBUG" || rec["level"] == "DEBUG-4" {
			t.Errorf("an Info handler got %s", line)
		}
		if rec["msg"] == "node ready" {
			ready = true
			if rec["level"] != "INFO" || rec["node"] != cfg.NodeName || rec["logger"] != "interlock" {
				t.Errorf("node ready logged as %s; want level INFO, node %q, logger interlock", line, cfg.NodeName)
			}
		}
	}
	if !ready {
		t.Errorf("the slog handler never got the node's Info line \"node ready\"; got:\n%s", bytes.Join(buf.lines(), []byte("\n")))
	}
}

// TestLoggerAndSlogAreExclusive checks that setting both is refused by
// name.
func TestLoggerAndSlogAreExclusive(t *testing.T) {
	cfg := cluster.Config{NodeName: "a", BindAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", BootstrapExpect: 1,
		Logger: hclog.NewNullLogger(), Slog: slog.New(slog.DiscardHandler)}
	n, err := cluster.Start(context.Background(), cfg)
	if err == nil {
		_ = n.Shutdown(context.Background())
		t.Fatal("Start accepted both Logger and Slog")
	}
	if !errors.Is(err, cluster.ErrInvalidConfig) || !bytes.Contains([]byte(err.Error()), []byte("Logger and Slog")) {
		t.Errorf("Start = %v; want ErrInvalidConfig naming Logger and Slog", err)
	}
}
