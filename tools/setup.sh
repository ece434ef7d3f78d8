#!/usr/bin/env bash
# Installs what vdb needs on Debian and fetches the model. Safe to run again: it does
# only what is missing. Used by both README commands (tools/main.sh, tools/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium: the tests render `vdb train --report` pages headless; curl: the server
# tests drive `vdb serve` with it; python3-venv: the PostgreSQL venv below.
packages=(liblmdb-dev libopenblas-dev libedit-dev libstemmer-dev pkg-config python3 python3-pip python3-venv unzip tmux chromium curl)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v swift >/dev/null || { echo "setup: the Swift toolchain is not on PATH (https://swift.org/install)" >&2; exit 1; }

if [ -x tools/fetch-model.sh ]; then
  tools/fetch-model.sh >/dev/null
fi

# The `vdb sync` tests run a real PostgreSQL + pgvector: PyPI's pgserver wheel carries
# both. Into a project venv (.venv-pg/, not committed), unless $VDB_PG_PYTHON names a
# python that already has it.
if ! "${VDB_PG_PYTHON:-.venv-pg/bin/python}" -c 'import pgserver' 2>/dev/null; then
  echo "setup: installing pgserver into .venv-pg" >&2
  python3 -m venv .venv-pg
  .venv-pg/bin/pip install -q pgserver==0.1.4
fi
