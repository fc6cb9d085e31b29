#!/usr/bin/env bash
# Consumer check: builds and runs a program against this checkout the way an
# application that imports Interlock does, in a throwaway module outside the
# repository. The module requires Interlock and replaces only Interlock (by
# this checkout), never a dependency, so `go mod tidy` resolves every
# dependency from Interlock's own go.mod alone, as it would after `go get`.
#
# Steps: go mod tidy, go vet, go build, then run the program (main.go beside
# this script) with a timeout. Exits non-zero if any step fails, or if the
# module's go directive had to rise above Interlock's own.
#
# Usage: integration/consumer/check.sh   (from anywhere; make test runs it
# through TestConsumerModule). The caller's Go environment (GOFLAGS,
# GOPROXY, GOTOOLCHAIN, ...) is used unchanged.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
run_timeout="${INTERLOCK_CONSUMER_TIMEOUT:-120}"

work="$(mktemp -d "${TMPDIR:-/tmp}/interlock-consumer.XXXXXX")"
trap 'rm -rf "$work"' EXIT
case "$work/" in
"$root"/*)
	echo "consumer: temp dir $work is inside the checkout $root; set TMPDIR to a directory outside it" >&2
	exit 1
	;;
esac

step() { echo "consumer: $*" >&2; }

# A go.work above the temp dir, or named by the caller, would change what
# the module resolves; the check is about the module alone.
export GOWORK=off

interlock="github.com/interlockraft/interlock"
# The go directive the module starts with: Interlock's own, so the check
# fails if Interlock's dependencies need a newer Go than it declares.
go_version="$(cd "$root" && go mod edit -json | sed -n 's/^[[:space:]]*"Go": "\(.*\)",\{0,1\}$/\1/p')"
if [ -z "$go_version" ]; then
	echo "consumer: could not read the go directive of $root/go.mod" >&2
	exit 1
fi

cd "$work"
step "$(go version); module in $work (go $go_version), Interlock replaced by $root"
if ! out="$(go mod init example.com/interlock-consumer 2>&1)"; then
	echo "$out" >&2
	exit 1
fi
go mod edit -go="$go_version" \
	-require="$interlock@v0.0.0-00010101000000-000000000000" \
	-replace="$interlock=$root"
cp "$here/main.go" main.go

step "go mod tidy"
go mod tidy

step "go.mod after tidy:"
cat go.mod >&2
replaced="$(go mod edit -json | tr -d ' \t\n' | grep -o '"Old":{"Path":"[^"]*"' | sed 's/.*"Path":"//; s/"$//' || true)"
if [ "$replaced" != "$interlock" ]; then
	echo "consumer: the module must replace $interlock and nothing else; it replaces: ${replaced:-nothing}" >&2
	exit 1
fi
after="$(go mod edit -json | sed -n 's/^[[:space:]]*"Go": "\(.*\)",\{0,1\}$/\1/p')"
if [ "$after" != "$go_version" ]; then
	echo "consumer: go mod tidy raised the go directive from $go_version to $after: a dependency needs a newer Go than Interlock's go.mod declares" >&2
	exit 1
fi

step "go vet ./..."
go vet ./...

step "go build"
go build -o consumer .

step "run (timeout ${run_timeout}s)"
timeout --kill-after=10 "$run_timeout" ./consumer
