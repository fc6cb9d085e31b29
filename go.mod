module github.com/interlockraft/interlock

go 1.25.0

// No replace directive: a replace applies only to this module's own builds,
// never to a module that imports Interlock, so the versions below must agree
// on their own. Why the pinned core dependencies are not the newest:
//
//   - raft-boltdb/v2 v2.3.1 is the newest release and imports
//     github.com/hashicorp/go-metrics/compat, a package that go-metrics v0.7.0
//     deleted. Every version here must therefore keep go-metrics below v0.7.0.
//   - go-metrics v0.6.1 is the newest release that still has compat. It is
//     required here so that importers get it too; Interlock's metrics bridge
//     (internal/gometricsbridge) imports its compat packages as well.
//   - client_golang v1.24.1, not v1.25.0: v1.25.0 needs go 1.26, and the go
//     directive stays at 1.25.0.
//   - raft v1.7.2, not v1.8.0: v1.8.0 requires go-metrics v0.7.0. Nor
//     v1.7.3: it is not among the dependency versions cleared for this
//     project. (A tick missed after an election in a trial with it was
//     later traced to the scheduler, not to Raft: docs/failure-modes.md,
//     "After an election".) Interlock uses
//     nothing that v1.8.0 added (commit-tracking log stores,
//     RestoreCommittedLogs).
//   - memberlist v0.6.0, not v0.7.0: v0.7.0 requires go-metrics v0.7.0. It
//     also added bounds on malformed gossip (short version fields, oversized
//     or over-compressed messages); run gossip with a SecretKey, as an
//     untrusted network needs anyway, so only key holders can send any.
//   - raft-wal v0.4.2 (Config.LogStore "wal"), the newest release served
//     (a version list may name only v0.4.0; ask for v0.4.2 by name).
//     v0.4.0 sealed a segment without its index block when Raft truncated
//     the log's tail (a follower dropping entries a new leader did not
//     have), so the next start failed to read the log and Raft panicked;
//     the chaos soak on wal hit it after one restart. It needs
//     go-metrics v0.5.4 and go 1.18, so go-metrics stays at v0.6.1 and the
//     go directive at 1.25.0; it lifts bbolt from v1.3.5 to v1.3.6, and
//     lists coreos/etcd for its own benchmarks, which no build of
//     Interlock compiles. Its Close leaves its metadata file open, so the
//     node closes that itself (cluster/logstore.go).
//   - go-hclog v1.6.3 is the newest release; raft-autopilot v0.3.0 and
//     go-sockaddr v1.0.7 are the newest and need nothing newer.
//
// Move raft and memberlist up together with a raft-boltdb release that no
// longer imports go-metrics/compat (or once bolt is no longer offered), and check
// with integration/consumer/check.sh.
require (
	github.com/anishathalye/porcupine v1.3.1
	github.com/hashicorp/go-hclog v1.6.3
	github.com/hashicorp/go-sockaddr v1.0.7
	github.com/hashicorp/memberlist v0.6.0
	github.com/hashicorp/raft v1.7.2
	github.com/hashicorp/raft-autopilot v0.3.0
	github.com/hashicorp/raft-boltdb/v2 v2.3.1
	github.com/hashicorp/raft-wal v0.4.2
	github.com/robfig/cron/v3 v3.0.1
	go.etcd.io/bbolt v1.3.6
	go.uber.org/goleak v1.3.0
)

require (
	github.com/hashicorp/go-metrics v0.6.1
	github.com/prometheus/client_golang v1.24.1
	github.com/prometheus/client_model v0.6.2
	github.com/prometheus/common v0.70.1
)

require (
	github.com/armon/go-metrics v0.4.1 // indirect
	github.com/benbjohnson/immutable v0.4.0 // indirect
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/boltdb/bolt v1.3.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/coreos/etcd v3.3.27+incompatible // indirect
	github.com/coreos/go-systemd v0.0.0-20191104093116-d3cd4ed1dbcf // indirect
	github.com/coreos/pkg v0.0.0-20220810130054-c7d1c02cb6cf // indirect
	github.com/fatih/color v1.13.0 // indirect
	github.com/google/btree v1.1.3 // indirect
	github.com/hashicorp/errwrap v1.1.0 // indirect
	github.com/hashicorp/go-immutable-radix v1.3.1 // indirect
	github.com/hashicorp/go-msgpack/v2 v2.1.5 // indirect
	github.com/hashicorp/go-multierror v1.1.1 // indirect
	github.com/hashicorp/golang-lru v1.0.2 // indirect
	github.com/mattn/go-colorable v0.1.12 // indirect
	github.com/mattn/go-isatty v0.0.14 // indirect
	github.com/miekg/dns v1.1.73 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/prometheus/procfs v0.21.1 // indirect
	github.com/sean-/seed v0.0.0-20170313163322-e2103e2c3529 // indirect
	github.com/stretchr/objx v0.5.3 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/exp v0.0.0-20220827204233-334a2380cb91 // indirect
	golang.org/x/net v0.57.0 // indirect
	golang.org/x/sync v0.22.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
	google.golang.org/protobuf v1.36.11 // indirect
)
