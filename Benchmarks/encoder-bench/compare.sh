#!/usr/bin/env bash
# Runs the peer (sentence-transformers, PyTorch CPU, 2 threads) and vdb's encoder back to
# back on the same texts, alternating, and prints vdb/peer ratios.
#
# Usage, from the project root (after tools/fetch-model.sh and the peer venv set-up):
#   Benchmarks/encoder-bench/compare.sh [ROUNDS] [extra encoder-bench options, e.g. --kernels SkylakeX]
# Environment: PEER_PYTHON (default .peer-venv/bin/python, else ../.peer-venv/bin/python),
#   SHARED (default ../shared), RESULTS (default peer-results).
set -euo pipefail

rounds="${1:-1}"
shift || true
shared="${SHARED:-../shared}"
results="${RESULTS:-peer-results}"
python="${PEER_PYTHON:-}"
if [[ -z "$python" ]]; then
  for candidate in .peer-venv/bin/python ../.peer-venv/bin/python; do
    [[ -x "$candidate" ]] && python="$candidate" && break
  done
fi
[[ -n "$python" ]] || { echo "compare: no peer venv; set PEER_PYTHON" >&2; exit 1; }
peer="$shared/bench/peer_embed.py"
data="$shared/datasets/scifact"
mkdir -p "$results"

"$python" "$peer" "$data/corpus.jsonl" --min-tokens 200 --limit 256 \
  --dump-texts "$results/passages.txt" --reps 1 --warmup 0 >/dev/null 2>&1
"$python" "$peer" "$data/queries.jsonl" --min-tokens 10 --max-tokens 16 \
  --dump-texts "$results/short.txt" --reps 1 --warmup 0 >/dev/null 2>&1
swift build -c release --product encoder-bench >/dev/null
bench=".build/release/encoder-bench"

for round in $(seq 1 "$rounds"); do
  echo "round $round: load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  "$python" "$peer" "$results/passages.txt" --json --out "$results/peer-passages-$round.json" >/dev/null 2>&1
  "$bench" --json --batch1 0 "$@" "$results/passages.txt" >"$results/vdb-passages-$round.json"
  "$python" "$peer" "$results/short.txt" --json --out "$results/peer-short-$round.json" >/dev/null 2>&1
  "$bench" --json --batch1 0 "$@" "$results/short.txt" >"$results/vdb-short-$round.json"
  "$python" "$peer" "$results/short.txt" --limit 200 --batch1 --json \
    --out "$results/peer-batch1-$round.json" >/dev/null 2>&1
  "$bench" --json --batch1 200 --reps 1 "$@" "$results/short.txt" >"$results/vdb-batch1-$round.json"
done

python3 - "$results" "$rounds" <<'PY'
import json, sys
results, rounds = sys.argv[1], int(sys.argv[2])
load = lambda name: json.load(open(f"{results}/{name}.json"))
for r in range(1, rounds + 1):
    print(f"round {r}")
    for workload in ("passages", "short"):
        peer = load(f"peer-{workload}-{r}")["sentences_per_sec"]["median"]
        vdb_json = load(f"vdb-{workload}-{r}")
        vdb = vdb_json[f"{results}/{workload}.txt"]
        print(f"  {workload:9} peer {peer:8.1f}/s  vdb {vdb['sentences_per_s']:8.1f}/s"
              f"  ratio {vdb['sentences_per_s'] / peer:5.2f}x  (vdb at {100 * vdb['fraction_of_peak']:.0f}%"
              f" of {vdb_json['sgemm_peak_gflops']:.0f} GFLOP/s sgemm peak, {vdb_json['blas_core']} kernels)")
    peer = load(f"peer-batch1-{r}")
    vdb = load(f"vdb-batch1-{r}")["batch1"]
    print(f"  batch 1   peer p50 {peer['latency_ms_p50']['median']:.2f} ms p95 {peer['latency_ms_p95']['median']:.2f} ms"
          f"  vdb p50 {vdb['p50_ms']:.2f} ms p95 {vdb['p95_ms']:.2f} ms"
          f"  ratio {peer['latency_ms_p50']['median'] / vdb['p50_ms']:.2f}x faster")
PY
