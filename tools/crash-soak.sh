#!/usr/bin/env bash
# Crash soak: kill -9 the writer at a random moment, many times, on one database, with
# readers running alongside; after every kill check that the database opens, `vdb
# verify` passes, every import batch is whole (no partial batch is visible), the
# single-transaction writes are all there or not at all, and queries answer.
#
#   tools/crash-soak.sh [TRIALS] [VDB]      # default 100 trials, .build-tests/release/vdb
#
# Operations, chosen in turn: import (batches of 16), upsert, delete (20 ids in one
# transaction), feedback, re-embed --all, train --tier full, train --tier adapter.
# Prints one line per trial and the counts at the end; exits 1 on any failed check.
# Needs the default model (tools/fetch-model.sh). VDB_SOAK_SEED makes a run repeatable.
set -uo pipefail
cd "$(dirname "$0")/.."
trials=${1:-100}
vdb=$(realpath "${2:-.build-tests/release/vdb}")
RANDOM=${VDB_SOAK_SEED:-$$}
work=$(mktemp -d "${TMPDIR:-/tmp}/vdb-soak.XXXXXX")
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
db=$work/db
export VDB_PATH=$db VDB_COLLECTION=soak
batch=16

words=(storage index vector graph page commit reader writer model query batch table
  cosine layer token neighbour recall latency crash journal snapshot memory disk)
sentence() { # $1: seed
  local s=$1 out=""
  for k in 1 2 3 4 5 6 7 8; do out+="${words[$(((s * 7 + k * 13) % ${#words[@]}))]} "; done
  echo "$out$1"
}

echo "soak: $trials trials in $work with $vdb" >&2
"$vdb" init >/dev/null || exit 1
for i in $(seq 0 199); do
  printf '{"_id": "base-%04d", "text": "%s"}\n' "$i" "$(sentence "$i")"
done >"$work/base.jsonl"
"$vdb" import "$work/base.jsonl" >/dev/null 2>&1 || exit 1
for i in $(seq 0 39); do
  "$vdb" feedback --query "$(sentence $((i * 3)))" --doc "base-$(printf %04d $((i * 3)))" \
    >/dev/null || exit 1
done

failures=0
declare -A outcomes
fail() {
  echo "FAIL trial $1: $2" >&2
  failures=$((failures + 1))
}

# Readers: query and get in a loop until told to stop; any non-zero exit is a failure.
readers() {
  local log=$1
  while [ ! -e "$work/stop" ]; do
    "$vdb" query "$(sentence $RANDOM)" -k 5 --no-log >/dev/null 2>>"$log.err"
    echo "query $?" >>"$log"
    "$vdb" get base-0007 >/dev/null 2>>"$log.err"
    echo "get $?" >>"$log"
  done
}

operations=(import upsert delete feedback reembed train-full train-adapter)
for trial in $(seq 1 "$trials"); do
  op=${operations[$(((trial - 1) % ${#operations[@]}))]}
  prefix=$(printf 't%04d' "$trial")
  case $op in
  import)
    for j in $(seq 0 $((batch * 12 - 1))); do
      printf '{"_id": "%s-%04d", "text": "%s"}\n' "$prefix" "$j" "$(sentence $((trial + j)))"
    done >"$work/$prefix.jsonl"
    command=(import "$work/$prefix.jsonl" --batch-size $batch)
    ;;
  upsert) command=(upsert --id "$prefix-one" --text "$(sentence "$trial")" --meta '{"n": 1}') ;;
  delete)
    # Twenty documents that earlier trials imported whole, deleted in one transaction.
    mapfile -t victims < <("$vdb" get --after "t" --limit 20 --json 2>/dev/null |
      sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
    command=(delete "${victims[@]:-none}")
    ;;
  feedback) command=(feedback --query "$(sentence "$trial")" --doc base-0001 --doc base-0002) ;;
  reembed) command=(reembed --all --batch-size 32) ;;
  train-full) command=(train --tier full --epochs 1 --force) ;;
  train-adapter) command=(train --tier adapter --epochs 2 --force) ;;
  esac

  rm -f "$work/stop" "$work/readers" "$work/readers.err"
  readers "$work/readers" &
  reader=$!
  "$vdb" "${command[@]}" >"$work/op.out" 2>&1 &
  writer=$!
  # A random moment in the first 4 s (most operations are still running).
  sleep "$((RANDOM % 4)).$((RANDOM % 10))"
  if kill -9 "$writer" 2>/dev/null; then outcome=killed; else outcome=finished; fi
  wait "$writer" 2>/dev/null
  touch "$work/stop"
  wait "$reader"
  outcomes[$op.$outcome]=$((${outcomes[$op.$outcome]:-0} + 1))

  # The checks.
  "$vdb" status >/dev/null 2>"$work/check.err" || fail "$trial" "status: $(cat "$work/check.err")"
  "$vdb" verify >"$work/verify.out" 2>&1 || fail "$trial" "verify: $(grep -m3 problem "$work/verify.out")"
  "$vdb" query "$(sentence 5)" -k 3 --no-log >/dev/null 2>"$work/check.err" ||
    fail "$trial" "query: $(cat "$work/check.err")"
  if grep -qv ' 0$' "$work/readers" 2>/dev/null; then
    fail "$trial" "a reader failed: $(head -c 300 "$work/readers.err")"
  fi
  case $op in
  import)
    present=$("$vdb" get --after "$prefix" --limit 1000 --json 2>/dev/null | grep -c "\"id\":\"$prefix-")
    if [ $((present % batch)) -ne 0 ]; then fail "$trial" "import: $present documents, a partial batch"; fi
    last=$((present - 1))
    if [ "$present" -gt 0 ] && ! "$vdb" get "$(printf '%s-%04d' "$prefix" "$last")" >/dev/null 2>&1; then
      fail "$trial" "import: the committed documents are not the file's first $present"
    fi
    ;;
  delete)
    if [ "${victims[0]:-none}" != none ]; then
      left=0
      for v in "${victims[@]}"; do "$vdb" get "$v" >/dev/null 2>&1 && left=$((left + 1)); done
      if [ "$left" -ne 0 ] && [ "$left" -ne "${#victims[@]}" ]; then
        fail "$trial" "delete: $left of ${#victims[@]} documents left (one transaction)"
      fi
    fi
    ;;
  esac
  echo "trial $trial: $op $outcome, checks done (failures so far: $failures)"
done

echo "== soak: $trials trials in $SECONDS s, $failures failed checks"
for key in $(printf '%s\n' "${!outcomes[@]}" | sort); do echo "  $key: ${outcomes[$key]}"; done
[ "$failures" -eq 0 ]
