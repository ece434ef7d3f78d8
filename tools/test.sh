#!/usr/bin/env bash
# README command 2: set up, then build and run every test.
# Tests run on a release build (the encoder and the index are far too slow unoptimised
# to test on real data); -enable-testing lets tests see internal API.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
# A scratch path of its own, so this build and command 1's plain release build do not
# keep rebuilding each other's modules.
flags=(-c release -Xswiftc -enable-testing --scratch-path .build-tests)
swift build "${flags[@]}" --build-tests
swift test "${flags[@]}" --skip-build "$@"
