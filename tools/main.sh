#!/usr/bin/env bash
# README command 1: set up, build vdb in release, and run the main job end to end on a
# demo database built from the project's own documentation (docs/*.md).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
echo "== building vdb (release)" >&2
swift build -c release --product vdb 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' >&2 || true
bin=$(swift build -c release --show-bin-path)
exec tools/demo.sh "$bin/vdb"
