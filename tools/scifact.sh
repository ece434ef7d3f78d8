#!/usr/bin/env bash
# Reproduces the SciFact training figures of docs/training.md through the database, the
# way a deployment would get them: import the corpus, run the 809 training queries
# (logged), feed their relevant documents back (a click when shown, else a correction),
# train on the log, and score the 300 test queries, which training never sees.
#
#   tools/scifact.sh [DB] [vdb train options…]
#   tools/scifact.sh /tmp/scifact.vdb                      full tier, 1 epoch
#   tools/scifact.sh /tmp/scifact.vdb --tier adapter       query-side adapter
#
# DB is created and fed once (about 5 minutes on 2 cores); later runs reuse it, so one
# database can try several recipes: `vdb models rollback -c scifact` undoes the last one.
# Needs the dataset at $SCIFACT (default ../shared/datasets/scifact) and a release build
# (or $VDB, the vdb binary to use).
set -euo pipefail
cd "$(dirname "$0")/.."
db=${1:-/tmp/scifact.vdb}
shift || true
data=${SCIFACT:-../shared/datasets/scifact}
vdb=${VDB:-.build/release/vdb}
export VDB_PATH=$db
[ -x "$vdb" ] || swift build -c release --product vdb

if [ ! -d "$db" ]; then
  "$vdb" init
  "$vdb" import -c scifact --beir "$data"
  work=$(mktemp -d)
  # The training queries with relevant documents, in a fixed order.
  python3 - "$data" "$work" <<'EOF'
import csv, json, sys
data, work = sys.argv[1], sys.argv[2]
texts = {}
with open(f"{data}/queries.jsonl") as f:
    for line in f:
        q = json.loads(line)
        texts[str(q["_id"])] = q["text"]
relevant = {}
with open(f"{data}/qrels/train.tsv") as f:
    for row in csv.reader(f, delimiter="\t"):
        if len(row) == 3 and row[2].isdigit() and int(row[2]) > 0:
            relevant.setdefault(row[0], []).append(row[1])
ids = sorted(relevant)
with open(f"{work}/queries.txt", "w") as f:
    f.writelines(texts[q].replace("\n", " ") + "\n" for q in ids)
with open(f"{work}/relevant.json", "w") as f:
    json.dump([relevant[q] for q in ids], f)
EOF
  "$vdb" query -c scifact --file "$work/queries.txt" --json > "$work/results.jsonl"
  # One `feedback LOG-ID DOC` per relevant document, through the shell in one process.
  python3 - "$work" <<'EOF' | "$vdb" shell > /dev/null
import json, sys
work = sys.argv[1]
relevant = json.load(open(f"{work}/relevant.json"))
with open(f"{work}/results.jsonl") as f:
    for docs, line in zip(relevant, f):
        for doc in docs:
            print(f"feedback {json.loads(line)['log_id']} {doc}")
EOF
  rm -rf "$work"
  "$vdb" log -c scifact --limit 1000000 --json | python3 -c "
import json, sys
kinds = [f['kind'] for line in sys.stdin for f in json.loads(line)['feedback']]
print('feedback:', kinds.count('click'), 'clicks,', kinds.count('correction'), 'corrections')"
  "$vdb" eval -c scifact --diagnose | sed -n 1,4p
fi

# The test queries in each search mode (hybrid is the default for a text collection).
evaluate() {
  for mode in dense keyword hybrid; do
    echo "-- $mode"
    "$vdb" eval -c scifact --beir "$data" --split test --exact --mode "$mode" 2>/dev/null \
      | grep -E "ndcg@10|mrr@10|recall@100 "
  done
}
echo "== test queries, current model"
evaluate
echo "== vdb train $*"
time "$vdb" train -c scifact "$@"
echo "== test queries, after"
evaluate
"$vdb" status | tail -2
