#!/usr/bin/env bash
# README command 2: set up, then build and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
swift build --build-tests
swift test --skip-build "$@"
