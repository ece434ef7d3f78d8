#!/usr/bin/env bash
# The main job: what vdb is for, step by step, each step a visible `vdb` command.
#   tools/demo.sh [PATH-TO-VDB]
# The demo database is ./demo.vdb (re-created on each run). The corpus is the
# project's own docs/, one document per section; tools/demo-queries.tsv holds
# questions a user might ask, each with the section that answers it.
set -euo pipefail
cd "$(dirname "$0")/.."
vdb=${1:-.build/release/vdb}
export VDB_PATH=$PWD/demo.vdb
rm -rf "$VDB_PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 tools/docs_corpus.py docs > "$work/corpus.jsonl"
# Three quarters of the questions are asked first; the rest later, after the first training.
awk 'NR % 4 != 0' tools/demo-queries.tsv > "$work/asked-first.tsv"
awk 'NR % 4 == 0' tools/demo-queries.tsv > "$work/asked-later.tsv"

step() {
  printf '\n\033[1m$ vdb %s\033[0m\n' "$*"
  "$vdb" "$@"
}

echo "== 1. A database that carries its own encoder, and our docs as a collection"
step init
step import "$work/corpus.jsonl" -c docs
step status

echo
echo "== 2. Ask questions"
step query -c docs "can two processes write to the database at the same time" -k 3
step query -c docs "how is a document stored" -k 3 --filter '{"file": "storage-format.md"}'
echo "-- exact words: keyword search (BM25); the default above is hybrid, both fused"
step query -c docs "MaxScore postings" -k 3 --mode keyword

echo
echo "== 3. Users ask more; every query is logged. They click the right section, or"
echo "      name it when it was not shown (a correction: the retriever failed)."
ask_and_judge() {  # FILE.tsv: question TAB the section that answers it
  cut -f1 "$1" > "$work/questions.txt"
  "$vdb" query -c docs --file "$work/questions.txt" -k 3 --json > "$work/results.jsonl"
  python3 - "$work/results.jsonl" "$1" > "$work/feedback.txt" <<'PY'
import json, sys
results = [json.loads(line) for line in open(sys.argv[1])]
truth = [line.rstrip("\n").split("\t")[1] for line in open(sys.argv[2])]
for result, relevant in zip(results, truth):
    print(result["log_id"], relevant)
PY
  while read -r log doc; do "$vdb" feedback "$log" "$doc"; done < "$work/feedback.txt"
}
ask_and_judge "$work/asked-first.tsv"
step log --limit 5

echo
echo "== 4. How good is retrieval, and is the retriever the broken part?"
step eval -c docs --from-log
step eval -c docs --diagnose

echo
echo "== 5. Fine-tune the encoder on the log; the gate decides on questions each"
echo "      candidate never trained on (cross-fitted: every judged question votes)"
step train -c docs
echo "-- more questions are asked and judged; the adapter tier (a map of the query vectors,"
echo "   seconds to train, no re-embedding) is judged on those alone: the questions the"
echo "   current model trained on train the candidate but do not vote"
ask_and_judge "$work/asked-later.tsv"
step train -c docs --tier adapter --dry-run
step train -c docs --tier adapter
step models

echo
echo "== 6. Re-embed into a new generation (queries keep working), then roll back"
step reembed -c docs --all
step status
step query -c docs "can two processes write to the database at the same time" -k 3 --no-log
step models rollback -c docs
step query -c docs "can two processes write to the database at the same time" -k 3 --no-log

echo
echo "== 7. A router: which docs family answers a question, or escalate to all the docs"
echo "      (tools/route-examples.jsonl: outcomes of earlier requests, see docs/routing.md)"
step route create docs storage=1 search=1 training=1 shell=1 general=4 --escalation general
step route log -r docs --input "how do I list the collections" --path shell --outcome good
step route import -r docs tools/route-examples.jsonl
step route train -r docs --max-escalation 0.3
step route -r docs "how do I delete a collection" "which key does a routing version use" \
  "what does the gate compare" "is vdb a good fit for my project"
step route eval -r docs tools/route-test.jsonl
echo "-- the log: the decisions still waiting for an outcome; one gets it, and the retrain"
echo "   embeds only the new input (the others' vectors are stored)"
step route entries -r docs --pending
decision=$("$vdb" route entries -r docs --pending --limit 1 --json |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["log_id"])')
step route log -r docs --id "$decision" --path shell --outcome good
step route train -r docs --max-escalation 0.3

echo
echo "== 8. A faster encoder: the docs' model computing in bfloat16 (AMX or AVX-512 BF16 where"
echo "      the CPU has them) and in w8a8 (8-bit activations, AVX-512 VNNI; docs/encoder.md),"
echo "      each scored against it over the same pools first"
model=$("$vdb" status --json | python3 -c \
  'import json, sys; print(next(c["model"] for c in json.load(sys.stdin)["collections"] if c["name"] == "docs"))')
step eval -c docs --from-log --model "$model" --pool 20
for precision in bfloat16 w8a8; do
  step models convert "$model" --precision "$precision"
  converted=$("$vdb" models convert "$model" --precision "$precision" --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
  step eval -c docs --from-log --model "$converted" --pool 20
done

echo
echo "== 9. Data in and out: the docs with their vectors, as JSON Lines, into a database of"
echo "      its own without a model (nothing is embedded again); the sections as CSV"
copy=$work/copy.vdb
step export -c docs --include vector -o "$work/docs-with-vectors.jsonl"
step --db "$copy" init --no-model
step --db "$copy" import "$work/docs-with-vectors.jsonl" -c docs
python3 - "$work/docs-with-vectors.jsonl" > "$work/sections.csv" <<'PY'
import csv, json, sys
out = csv.writer(sys.stdout)
out.writerow(["id", "file", "text"])
for line in open(sys.argv[1]):
    document = json.loads(line)
    out.writerow([document["id"], document["metadata"].get("file", ""), document["text"]])
PY
step --db "$copy" import --csv "$work/sections.csv" -c sections --text-column text
step --db "$copy" collections
step --db "$copy" query -c sections "MaxScore postings" -k 2 --mode keyword
step --db "$copy" verify
