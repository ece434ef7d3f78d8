#!/usr/bin/env bash
# The main job: what vdb is for, step by step, each step a visible `vdb` command.
#   tools/demo.sh [PATH-TO-VDB]
# The demo database is ./demo.vdb (re-created on each run); the corpus is the
# project's own docs/, one document per section.
set -euo pipefail
cd "$(dirname "$0")/.."
vdb=${1:-.build/release/vdb}
export VDB_PATH=$PWD/demo.vdb
rm -rf "$VDB_PATH"
corpus=$(mktemp --suffix=.jsonl)
trap 'rm -f "$corpus"' EXIT
python3 tools/docs_corpus.py docs > "$corpus"

step() {
  printf '\n\033[1m$ vdb %s\033[0m\n' "$*"
  "$vdb" "$@"
}

step init
step import "$corpus" -c docs
step status
step get -c docs --limit 5
first=$("$vdb" get -c docs --limit 1 --json | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["id"])')
step get -c docs "$first" --json
