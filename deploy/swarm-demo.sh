#!/usr/bin/env bash
# make swarm-demo: deploys deploy/docker-stack.yml on this machine, prints
# every run for DEMO_SECONDS (default 30) with a duplicate count, and
# removes everything it made: the stack, its network and volumes, the
# image, and the swarm if this script initialised it. Exits 1 if any tick
# ran twice or nothing ran.
set -euo pipefail
cd "$(dirname "$0")/.."

stack=interlock-demo
seconds=${DEMO_SECONDS:-30}
image=interlock-swarm:demo
made_swarm=0
had_gwbridge=0

cleanup() {
	set +e
	echo "--- removing stack $stack"
	docker stack rm "$stack" >/dev/null 2>&1
	# The stack's containers, then its network, go away asynchronously;
	# its volumes can only be removed once no container uses them.
	for _ in $(seq 120); do
		[ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$stack")" ] &&
			[ -z "$(docker network ls -q --filter "label=com.docker.stack.namespace=$stack")" ] && break
		sleep 0.5
	done
	for v in $(docker volume ls -q --filter "label=com.docker.stack.namespace=$stack"); do
		docker volume rm "$v" >/dev/null
	done
	docker image rm "$image" >/dev/null 2>&1
	if [ "$made_swarm" = 1 ]; then
		echo "--- leaving the swarm this demo initialised"
		docker swarm leave --force >/dev/null
		# swarm init creates docker_gwbridge and leaving keeps it.
		[ "$had_gwbridge" = 1 ] || docker network rm docker_gwbridge >/dev/null
	fi
}
trap cleanup EXIT

echo "--- building $image"
deploy/build-image.sh "$image" 2>/dev/null

state=$(docker info --format '{{.Swarm.LocalNodeState}}')
if [ "$state" = inactive ]; then
	echo "--- initialising a single-node swarm (left again at the end)"
	docker network inspect docker_gwbridge >/dev/null 2>&1 && had_gwbridge=1
	docker swarm init --advertise-addr 127.0.0.1 >/dev/null
	made_swarm=1
elif [ "$state" != active ]; then
	echo "swarm state is $state; expected active or inactive" >&2
	exit 1
fi

echo "--- deploying stack $stack (3 replicas)"
if ! out=$(INTERLOCK_IMAGE=$image INTERLOCK_JOBS=heartbeat:1s,report:5s \
	docker stack deploy --resolve-image never -c deploy/docker-stack.yml "$stack" 2>&1); then
	echo "$out" >&2
	exit 1
fi

echo "--- runs for ${seconds}s (job, tick and the replica that ran it)"
# Each run logs "run: node=... job=... tick=... token=..."; a job's tick
# seen twice is a duplicate.
set +o pipefail
timeout "$seconds" docker service logs --raw --no-trunc -f "${stack}_interlock" 2>&1 |
	awk '
	/ run: / {
		job = ""; tick = ""; node = ""
		for (i = 1; i <= NF; i++) {
			if ($i ~ /^job=/) job = substr($i, 5)
			if ($i ~ /^tick=/) tick = substr($i, 6)
			if ($i ~ /^node=/) node = substr($i, 6)
		}
		runs++; perNode[node]++
		if (seen[job " " tick]++) { dup++; print "DUPLICATE: " $0 } else print
		fflush()
		next
	}
	/ (started|leader|lock held):/ { print; fflush() }
	END {
		for (n in perNode) printf "node %s ran %d\n", n, perNode[n]
		printf "runs=%d duplicates=%d\n", runs, dup + 0
		if (runs == 0 || dup > 0) exit 1
	}'
status=${PIPESTATUS[1]}
set -o pipefail
exit "$status"
