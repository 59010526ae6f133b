#!/usr/bin/env bash
# Installs and starts what wasmrouter needs on a Debian machine: RabbitMQ (the broker the
# router and its integration tests talk to), Chromium (the console's browser tests), promtool
# (package prometheus: the alert rules' tests) and, when available, clang + wasi-libc for the C
# guest examples, npm for the AssemblyScript ones (the compiler itself comes from npm) and
# python3-celery for the end-to-end trace test. Safe to run again: it only installs what is
# missing and only starts a broker that is not answering.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null && SUDO="sudo" || { echo "setup: need root or sudo to install packages" >&2; }
fi

if ! command -v go >/dev/null; then
  echo "setup: Go 1.26 or newer is required (https://go.dev/dl/)" >&2
  exit 1
fi

missing=()
command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
command -v clang >/dev/null || missing+=(clang)
command -v wasm-ld >/dev/null || missing+=(lld)
[ -d /usr/share/wasi-sysroot ] || [ -d /usr/lib/wasm32-wasi ] || missing+=(wasi-libc)
ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1 || missing+=(libclang-rt-14-dev-wasm32)
# npm installs the AssemblyScript compiler (guest/as); without it the prebuilt AssemblyScript
# guests are used and the scaffold test is skipped.
command -v npm >/dev/null || missing+=(npm)
# The console's browser tests drive Chromium; promtool checks the alert rules in deploy/.
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null || missing+=(chromium)
command -v promtool >/dev/null || missing+=(prometheus)
# Celery for the end-to-end trace test (a real publisher and worker); Debian's package installs
# it for /usr/bin/python3.
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import celery' 2>/dev/null || missing+=(python3-celery)

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # The broker is required; the rest is optional (committed prebuilt C guests are used without
  # the C toolchain, and the Celery test is skipped without Celery).
  if [[ " ${missing[*]} " == *" rabbitmq-server "* ]]; then
    $SUDO apt-get install -y -qq rabbitmq-server >/dev/null
  fi
  # Required by tests (they fail without them): the browser and promtool.
  for p in chromium prometheus; do
    if [[ " ${missing[*]} " == *" $p "* ]]; then
      $SUDO apt-get install -y -qq --no-install-recommends "$p" >/dev/null || echo "setup: could not install $p: the console and alert-rule tests will fail" >&2
    fi
  done
  optional=()
  for p in "${missing[@]}"; do
    case "$p" in rabbitmq-server | chromium | prometheus) ;; *) optional+=("$p") ;; esac
  done
  if [ ${#optional[@]} -gt 0 ]; then
    for p in "${optional[@]}"; do
      $SUDO apt-get install -y -qq "$p" >/dev/null || echo "setup: $p not installed (optional: prebuilt C and AssemblyScript guests are used, the Celery test is skipped)" >&2
    done
  fi
fi

# Start the broker unless one already answers on 5672.
broker_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if ! broker_up; then
  echo "setup: starting rabbitmq-server"
  $SUDO rabbitmq-server -detached >/dev/null 2>&1 || true
fi
up=""
for _ in $(seq 1 120); do
  if broker_up && $SUDO rabbitmqctl -q await_startup >/dev/null 2>&1; then
    up=1
    break
  fi
  sleep 1
done
if [ -z "$up" ]; then
  echo "setup: RabbitMQ did not start within 120 s (see /var/log/rabbitmq)" >&2
  exit 1
fi
echo "setup: RabbitMQ is up on 127.0.0.1:5672"

# A log on a stream (store { backend = "stream" }) appends and reads its events over the
# stream protocol, port 5552: the rabbitmq_stream plugin, enabled on the running broker
# (no restart).
if ! $SUDO rabbitmq-plugins -q is_enabled rabbitmq_stream >/dev/null 2>&1; then
  echo "setup: enabling the broker's plugin rabbitmq_stream"
  $SUDO rabbitmq-plugins -q enable rabbitmq_stream >/dev/null
fi
stream_up() { (exec 3<>/dev/tcp/127.0.0.1/5552) 2>/dev/null; }
for _ in $(seq 1 60); do
  if stream_up; then
    echo "setup: the stream protocol is up on 127.0.0.1:5552"
    exit 0
  fi
  sleep 1
done
echo "setup: the rabbitmq_stream plugin does not listen on 5552 after 60 s (see /var/log/rabbitmq)" >&2
exit 1
