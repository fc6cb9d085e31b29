.PHONY: demo test vet bench bench-quick consumer-check

# Three nodes in one process; fails unless every tick ran exactly once.
demo:
	go run ./examples/three-node -for 15s

# Includes TestConsumerModule, which runs consumer-check's script. The
# bench is a module of its own, which ./... leaves out; its unit tests (the
# report's arithmetic and wording, the tick analysis) run here too, and
# start no Redis or etcd.
test:
	go test -race -count=1 -timeout 15m ./...
	cd integration/bench && go test -race -count=1 -timeout 5m ./...

# Builds and runs a program in a throwaway module outside the checkout that
# requires Interlock with no replace for its dependencies, as an
# application does after go get.
consumer-check:
	integration/consumer/check.sh

vet:
	go vet ./...

# Side-by-side benchmarks against gointerlock + Redis, a Redis lock and
# embedded etcd (integration/bench, its own module). Writes
# docs/benchmarks.md and docs/benchmarks-locks.png; installs redis-server
# from Debian packages if it is missing. bench takes about three quarters
# of an hour, bench-quick under five minutes (4m47s last measured) on a loaded 2-core
# machine (S3 alone fails every system nine ways, with 5 s pauses and 10 s
# partitions).
bench:
	cd integration/bench && go run . -mode=full -out ../../docs/benchmarks.md

bench-quick:
	cd integration/bench && go run . -mode=quick -out ../../docs/benchmarks.md

# Chaos soak: five nodes under random kill -9, SIGSTOP/SIGCONT and restarts
# for DURATION (make test runs the same test for 2m). Ends with a line such
# as "chaos: duration=10m0s events=... duplicates=0 ... seed=...";
# INTERLOCK_CHAOS_SEED=<seed> replays a run's random choices.
.PHONY: chaos
DURATION ?= 10m
chaos:
	INTERLOCK_CHAOS_DURATION=$(DURATION) go test -race -count=1 -timeout 0 -run TestChaos -v ./integration/

# Builds the example service's image, deploys deploy/docker-stack.yml (3
# replicas) on a single-node swarm (initialised, and left afterwards, only
# if none is active), prints every run for DEMO_SECONDS (30) with a
# duplicate count, then removes the stack, volumes and image.
.PHONY: swarm-demo
swarm-demo:
	deploy/swarm-demo.sh

# Runs each fuzz target for FUZZTIME (go test -fuzz takes one package and
# one target at a time). make test runs the committed seeds of each
# (testdata/fuzz) as ordinary tests.
#
# FUZZTIME is a count of executions (Nx), not a duration: with a duration,
# go test can fail a clean run with "context deadline exceeded" when its
# deadline fires while a worker is busy (Go issue 75804, fixed in Go 1.27);
# CI hit it on FuzzDecodeCommand. A duration still works (FUZZTIME=10m).
.PHONY: fuzz fuzz-short
FUZZTIME ?= 5000000x
FUZZ_TARGETS = ./transport:FuzzReadFrame ./fsm:FuzzDecodeCommand ./fsm:FuzzRestore ./fsm:FuzzApply ./cluster:FuzzDecodeMeta
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg) for $(FUZZTIME)"; \
		go test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# The fuzz budget CI spends (.ci/run): 100,000 executions per target, 5 to
# 25 s each here, about two minutes in all with the instrumented builds.
fuzz-short:
	$(MAKE) fuzz FUZZTIME=100000x
