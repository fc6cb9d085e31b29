package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/interlockraft/interlock/cluster"
	"github.com/interlockraft/interlock/cluster/clustertest"
)

// mountTmpfs mounts a tmpfs of the given size on a new directory and
// unmounts it when the test ends. Cleanups run last in, first out, so a
// cluster made after this call is shut down before the unmount.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs to fill needs root; run the test as root (CI does)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file in dir until the filesystem is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			return path
		}
	}
}

// TestFullDiskLeaderStepsDownAndRecovers gives node0 a 4 MiB tmpfs as its
// DataDir, makes it the leader, and fills the tmpfs while node1 keeps
// proposing. node0 must report a disk fault, stop leading, refuse its own
// proposals with ErrDiskFault, while the other two keep committing; once
// the filler is removed it must report healthy and catch up, and a restart
// on the same DataDir must find no corrupt state.
func TestFullDiskLeaderStepsDownAndRecovers(t *testing.T) {
	small := mountTmpfs(t, "4m")
	c := clustertest.MakeCluster(t, 3, clustertest.Options{Configure: func(i int, cfg *cluster.Config) {
		cfg.DataDir = t.TempDir()
		if i == 0 {
			cfg.DataDir = filepath.Join(small, "node0")
		}
	}})
	leader := c.Leader(10 * time.Second)
	if leader != 0 {
		if err := cluster.TransferTo(c.Nodes[leader], c.Nodes[0]); err != nil {
			t.Fatalf("transfer leadership to node0: %v", err)
		}
		if got := c.Leader(10 * time.Second); got != 0 {
			t.Fatalf("leader is node%d after the transfer to node0", got)
		}
	}
	// node1 proposes all along: each lock and unlock is two entries.
	stop := make(chan struct{})
	proposer := make(chan int)
	go func() {
		ok := 0
		defer func() { proposer <- ok }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			l, err := c.Nodes[1].TryLock(ctx, fmt.Sprintf("load-%d", i%8), 5*time.Second)
			if err == nil && l.Unlock(ctx) == nil {
				ok++
			}
			cancel()
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
			<-proposer
		}
	}()

	started := time.Now()
	filler := fill(t, small)
	clustertest.Eventually(t, 20*time.Second, func() bool { return errors.Is(cluster.DiskHealth(c.Nodes[0]), cluster.ErrDiskFault) }, "node0 never reported a disk fault with its DataDir full")
	t.Logf("disk fault seen %s after filling: %v", time.Since(started).Round(time.Millisecond), cluster.DiskHealth(c.Nodes[0]))
	clustertest.Eventually(t, 20*time.Second, func() bool {
		return !c.Nodes[0].IsLeader() && (c.Nodes[1].IsLeader() || c.Nodes[2].IsLeader())
	}, "node0 still leads, or no other node took over, with its DataDir full")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Nodes[0].TryLock(ctx, "from-node0", time.Second); !errors.Is(err, cluster.ErrDiskFault) {
		t.Errorf("TryLock on node0 with its DataDir full: %v, want ErrDiskFault", err)
	}
	// The others keep committing.
	l, err := c.Nodes[2].TryLock(ctx, "while-full", 5*time.Second)
	if err != nil {
		t.Fatalf("TryLock on node2 while node0's disk is full: %v", err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	clustertest.Eventually(t, 20*time.Second, func() bool { return cluster.DiskHealth(c.Nodes[0]) == nil }, "node0 still reports %v after space returned", lazyErr(func() error { return cluster.DiskHealth(c.Nodes[0]) }))
	t.Logf("healthy %s after space returned", time.Since(freed).Round(time.Millisecond))
	close(stop)
	if ok := <-proposer; ok == 0 {
		t.Errorf("node1 completed no lock round trip during the test")
	}
	clustertest.Eventually(t, 20*time.Second, func() bool {
		return c.Nodes[0].AppliedIndex() >= c.Nodes[1].AppliedIndex() && c.Nodes[1].AppliedIndex() == c.Nodes[2].AppliedIndex()
	}, "node0 did not catch up: applied %d, node1 %d", c.Nodes[0].AppliedIndex(), c.Nodes[1].AppliedIndex())

	// A restart on the same DataDir reads back what was written.
	cfg := c.Configs[0]
	c.Stop(0)
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	n, err := cluster.Start(sctx, cfg)
	if err != nil {
		t.Fatalf("restart node0 on its DataDir after the disk fault: %v", err)
	}
	c.Nodes[0] = n
	clustertest.Eventually(t, 20*time.Second, func() bool {
		return n.AppliedIndex() == c.Nodes[1].AppliedIndex() && cluster.DiskHealth(n) == nil
	}, "restarted node0 did not catch up: applied %d, node1 %d", n.AppliedIndex(), c.Nodes[1].AppliedIndex())
	if _, ok := cluster.State(n).Lock("while-full"); ok {
		t.Errorf("restarted node0 still holds the lock released while its disk was full")
	}
}

type lazyErr func() error

func (l lazyErr) String() string { return fmt.Sprint(l()) }
