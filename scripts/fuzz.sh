#!/usr/bin/env bash
# Runs every Go fuzz target in the module for the given time each (default 10s): the seeded
# corpora run in every `go test`; this explores beyond them. Usage: scripts/fuzz.sh [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-10s}"
status=0
while IFS=: read -r file _ line; do
  name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' <<<"$line")
  dir=$(dirname "$file")
  mod=$dir # the module holding the file: third_party/amqp091-go is a module of its own
  while [ ! -f "$mod/go.mod" ]; do mod=$(dirname "$mod"); done
  pkg="./${dir#"$mod"}"
  echo "fuzz: $mod $pkg $name ($fuzztime)"
  if ! (cd "$mod" && go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg") >/tmp/fuzz-$$.log 2>&1; then
    cat /tmp/fuzz-$$.log
    status=1
  fi
done < <(git ls-files '*_test.go' | xargs grep -Hn '^func Fuzz' )
rm -f /tmp/fuzz-$$.log
exit $status
