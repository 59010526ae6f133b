#!/usr/bin/env bash
# `make bench`: the end-to-end comparison of the router with a plain amqp091-go loop and with
# RabbitMQ's Shovel on the same broker (bench/cmd/e2e; method in BENCHMARKS.md), replay
# against a plain publisher with confirms (bench/cmd/replay), the reload benchmarks (e2e), then
# the packages' micro-benchmarks.
# Results go to bin/bench-results/ in benchstat's format.
#
# Settings (environment):
#   BENCH_N=100000          messages per throughput run
#   BENCH_ROUNDS=3          throughput runs per side, alternating
#   BENCH_SIDES=baseline,router,router-traced,router-go,router-stream,router-stream-2,shovel
#                           also router-wasm (needs BENCH_FLAGS="-filter F.wasm -transform T.wasm")
#                           and router-all (needs BENCH_FLAGS="-dr-url URL"); shovel enables the
#                           broker's plugin rabbitmq_shovel when absent; router-stream keeps the
#                           log in a stream of the broker; router-stream-2 runs two routers on one
#                           stream of a private three-node cluster it starts (about a minute), or
#                           of the cluster BENCH_FLAGS="-stream-cluster URL1,URL2,URL3" names
#                           and redpanda (Redpanda Connect, needs BENCH_REDPANDA_BIN)
#   BENCH_REDPANDA_BIN=     the Redpanda Connect binary of side redpanda (amqp_0_9 input and
#                           output; built apart, BENCHMARKS.md says how)
#   BENCH_FLAGS=            more bench/cmd/e2e flags (bin/bench-e2e --help lists them)
#   BENCH_REPLAY=1          0 skips the replay comparison
#   BENCH_REPLAY_SIDES=publish,publish-replayed,replay
#   BENCH_MEMORY=0          1 also runs the memory benchmark (bench/cmd/memory): RSS through a
#                           run, an outage backlog and a replay, plotted to bin/bench-results/memory.svg
#   BENCH_MEMORY_N=1000000  messages per phase of the memory benchmark
#   BENCH_RELOAD=1          0 skips the reload benchmarks (e2e: time to the new generation for a
#                           route change and a changed Go guest; throughput with a reload every
#                           second against none)
#   BENCH_MICRO=1           0 skips the micro-benchmarks
#   BENCH_COUNT=6           -count of the micro-benchmarks
#   BENCH_WORKDIR=bin/bench-work   where router stores live: keep it on a disk, not a tmpfs
#   WASMROUTER_AMQP_URL     the broker (default amqp://guest:guest@127.0.0.1:5672/)
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
out=bin/bench-results
mkdir -p "$out"
${MAKE:-make} -s build # cached, so cheap; and never measures a stale binary
scripts/build-baseline.sh bin/bench-baseline # upstream amqp091-go, not third_party/
$GO build -o bin/bench-e2e ./bench/cmd/e2e
$GO build -o bin/bench-replay ./bench/cmd/replay
$GO build -o bin/bench-memory ./bench/cmd/memory

benchstat=$(command -v benchstat || true)
[ -z "$benchstat" ] && [ -x "$($GO env GOPATH)/bin/benchstat" ] && benchstat="$($GO env GOPATH)/bin/benchstat"

sides=${BENCH_SIDES:-baseline,router,router-traced,router-go,router-stream,router-stream-2,shovel}
case ",$sides," in
*,shovel,*)
  # The Shovel side declares a dynamic shovel: the plugin must run on the (local) broker.
  if ! rabbitmq-plugins -q is_enabled rabbitmq_shovel >/dev/null 2>&1; then
    echo "enabling the broker's plugin rabbitmq_shovel for the shovel side"
    rabbitmq-plugins enable rabbitmq_shovel
  fi
  ;;
esac

redpanda=()
[ -n "${BENCH_REDPANDA_BIN:-}" ] && redpanda=(-redpanda-bin "$BENCH_REDPANDA_BIN")

status=0
# shellcheck disable=SC2086 # BENCH_FLAGS is a list of flags
./bin/bench-e2e -n "${BENCH_N:-100000}" -rounds "${BENCH_ROUNDS:-3}" -sides "$sides" \
  -workdir "${BENCH_WORKDIR:-bin/bench-work}" -benchstat-out "$out/e2e.txt" "${redpanda[@]}" ${BENCH_FLAGS:-} |
  tee "$out/e2e-report.txt" || status=1
if [ "$status" = 0 ] && [ -n "$benchstat" ]; then
  echo
  echo "== benchstat -col /side $out/e2e.txt"
  "$benchstat" -col /side "$out/e2e.txt" || true
fi

if [ "${BENCH_REPLAY:-1}" = 1 ]; then
  echo
  echo "== replay: bench/cmd/replay"
  ./bin/bench-replay -n "${BENCH_N:-100000}" -rounds "${BENCH_ROUNDS:-3}" \
    -sides "${BENCH_REPLAY_SIDES:-publish,publish-replayed,replay}" \
    -workdir "${BENCH_WORKDIR:-bin/bench-work}" -benchstat-out "$out/replay.txt" |
    tee "$out/replay-report.txt" || status=1
  if [ -n "$benchstat" ] && [ -s "$out/replay.txt" ]; then
    echo
    echo "== benchstat -col /side $out/replay.txt"
    "$benchstat" -col /side "$out/replay.txt" || true
  fi
fi

if [ "${BENCH_MEMORY:-0}" = 1 ]; then
  echo
  echo "== memory: bench/cmd/memory"
  ./bin/bench-memory -n "${BENCH_MEMORY_N:-1000000}" -workdir "${BENCH_WORKDIR:-bin/bench-work}" \
    -svg "$out/memory.svg" | tee "$out/memory-report.txt" || status=1
fi

if [ "${BENCH_RELOAD:-1}" = 1 ]; then
  echo
  echo "== reload: time to the new generation; throughput with a reload every second"
  $GO test -run '^$' -bench 'BenchmarkReload$' -benchtime 20x -count "${BENCH_COUNT:-6}" ./e2e/ |
    tee "$out/reload.txt" || status=1
  $GO test -run '^$' -bench 'BenchmarkReloadThroughput' -benchtime "${BENCH_ROUNDS:-3}x" -timeout 60m ./e2e/ |
    tee "$out/reload-throughput.txt" || status=1
  if [ -n "$benchstat" ]; then
    echo
    echo "== benchstat $out/reload.txt $out/reload-throughput.txt"
    "$benchstat" "$out/reload.txt" || true
    "$benchstat" "$out/reload-throughput.txt" || true
  fi
fi

if [ "${BENCH_MICRO:-1}" = 1 ]; then
  echo
  echo "== micro-benchmarks (filters, store, wasmhost, tracing)"
  $GO test -run '^$' -bench . -benchmem -count "${BENCH_COUNT:-6}" ./filters/ ./store/ ./wasmhost/ ./internal/tracing/ |
    tee "$out/micro.txt" || status=1
  if [ -n "$benchstat" ]; then
    echo
    echo "== benchstat $out/micro.txt"
    "$benchstat" "$out/micro.txt" || true
  fi
fi

if [ "${BENCH_CONSOLE:-1}" = 1 ]; then
  echo
  echo "== console: search over 1,000,000 events; routing with six console tabs open"
  $GO test -run '^$' -bench SearchFirstPage -benchtime 10x -count 3 ./internal/logquery/ |
    tee "$out/search.txt" || status=1
  $GO test -run '^$' -bench RoutingWithConsoleTabs -benchtime 1x ./e2e/console/ |
    tee "$out/console-tabs.txt" || status=1
fi

[ -n "$benchstat" ] || echo "(install benchstat for summaries: $GO install golang.org/x/perf/cmd/benchstat@latest)"
exit "$status"
