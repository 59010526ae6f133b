#!/usr/bin/env bash
# Builds the benchmark's baseline, the plain amqp091-go loop (bench/cmd/baseline), against the
# upstream amqp091-go release go.mod requires, without the router's patched copy
# (third_party/amqp091-go): the loop is the yardstick of plain amqp091-go, so it must not get
# the router's changes. Usage: scripts/build-baseline.sh [OUTPUT], default bin/bench-baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
out=${1:-bin/bench-baseline}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed '/=> .\/third_party\/amqp091-go/d' go.mod >"$tmp/baseline.mod"
cp go.sum "$tmp/baseline.sum"
$GO build -mod=mod -modfile="$tmp/baseline.mod" -o "$out" ./bench/cmd/baseline
if $GO version -m "$out" | grep -q 'third_party/amqp091-go'; then
	echo "build-baseline: $out was built with the patched amqp091-go" >&2
	exit 1
fi
