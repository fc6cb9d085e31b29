#!/usr/bin/env bash
# Builds the interlock-swarm image without pulling anything: a static
# binary of examples/swarm built on the host, on an empty base
# (deploy/Dockerfile.scratch).
#
#   deploy/build-image.sh [TAG]     # default interlock-swarm:dev
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-interlock-swarm:dev}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$ctx/interlock-swarm" ./examples/swarm
docker build -q -f deploy/Dockerfile.scratch -t "$tag" "$ctx" >/dev/null
echo "built $tag"
