#!/usr/bin/env python3
"""Public intent sets as routing sets for `vdb route`, and scikit-learn's classifiers on them.

Neither set is shipped with vdb; give the path of a clone.

- CLINC150 (Larson et al. 2019, github.com/clinc/oos-eval, CC BY 3.0): requests to a
  task-oriented assistant, 150 intents in 10 domains, 100 training / 20 validation / 30
  test requests per intent (`data/data_full.json`), and out-of-scope requests that no
  intent serves. `--level domain` routes a request to one of the 10 domains (a collection
  or a tool per domain), `--level intent` to one of the 150 intents; out-of-scope requests
  go to `out_of_scope`, the escalation path (cost 4).
- Banking77 (Casanueva et al. 2020, github.com/PolyAI-LDN/task-specific-datasets, CC BY
  4.0): 13,083 online-banking requests in 77 fine-grained intents (`banking_data/train.csv`
  and `test.csv`); each intent is a path, the first in order is the escalation path.

`convert` writes `vdb route import` files (JSON Lines `{"input", "path"}`, the best path
of each request), `train.jsonl` and `test.jsonl`, and `paths.txt`, the paths for
`vdb route create`. `--per-path K` keeps K training requests per path (a seeded sample,
spread evenly over a CLINC domain's intents): the early log of a new router. The test file
is the whole test split (CLINC: with its out-of-scope test requests).

`peer` embeds both files with sentence-transformers (the same all-MiniLM-L6-v2) and scores
on the test file: nearest centroid (cosine of unit class means; semantic-router),
logistic regression (SetFit's head, scikit-learn defaults, balanced class weights), pooled
Ledoit-Wolf LDA (vdb's `shrunk_lda`) and nearest examples (mean cosine of a class's 3 most
similar training inputs; vdb's `nearest_examples`).

    python Benchmarks/peers/intent_routes.py convert --clinc oos-eval/data/data_full.json \
        --level domain --per-path 16 --seed 1 --out /tmp/clinc
    python Benchmarks/peers/intent_routes.py convert --banking77 task-specific-datasets/banking_data \
        --per-path 8 --seed 1 --out /tmp/banking
    python Benchmarks/peers/intent_routes.py peer /tmp/clinc/train.jsonl /tmp/clinc/test.jsonl
"""
import argparse
import csv
import json
import os
import random
import sys

OUT_OF_SCOPE = "out_of_scope"


def domain_of(clinc_path):
    with open(os.path.join(os.path.dirname(clinc_path), "domains.json"), encoding="utf-8") as f:
        domains = json.load(f)
    return {intent: domain for domain, intents in domains.items() for intent in intents}


def clinc_rows(args):
    """CLINC150's training and test rows as (text, intent, path)."""
    with open(args.clinc, encoding="utf-8") as f:
        data = json.load(f)
    domains = domain_of(args.clinc)

    def path_of(intent):
        if intent == "oos":
            return OUT_OF_SCOPE
        return domains[intent] if args.level == "domain" else intent

    return [[(text, intent, path_of(intent)) for text, intent in data[split] + data["oos_" + split]]
            for split in ("train", "test")]


def banking77_rows(args):
    """Banking77's training and test rows as (text, intent, path): each intent is a path."""
    def read(name):
        with open(os.path.join(args.banking77, name), encoding="utf-8", newline="") as f:
            return [(row["text"], row["category"], row["category"]) for row in csv.DictReader(f)]

    return read("train.csv"), read("test.csv")


def convert(args):
    train, test = clinc_rows(args) if args.clinc else banking77_rows(args)
    if args.per_path:
        rng = random.Random(args.seed)
        by_path = {}
        for text, intent, path in train:
            by_path.setdefault(path, {}).setdefault(intent, []).append(text)
        train = []
        for path, intents in sorted(by_path.items()):
            pools = [rng.sample(texts, len(texts)) for _, texts in sorted(intents.items())]
            taken = [pool[i] for i in range(max(map(len, pools))) for pool in pools if i < len(pool)]
            train += [(text, None, path) for text in taken[: args.per_path]]
        rng.shuffle(train)
    os.makedirs(args.out, exist_ok=True)
    for name, split in (("train", train), ("test", test)):
        with open(os.path.join(args.out, name + ".jsonl"), "w", encoding="utf-8") as f:
            for text, _, path in split:
                f.write(json.dumps({"input": text, "path": path}) + "\n")
    paths = sorted({path for _, _, path in train})
    escalation = OUT_OF_SCOPE if OUT_OF_SCOPE in paths else paths[0]
    with open(os.path.join(args.out, "paths.txt"), "w", encoding="utf-8") as f:
        f.write(" ".join(p for p in paths if p != escalation) + f" {escalation}=4 --escalation {escalation}\n")
    print(f"{len(train)} training and {len(test)} test requests, {len(paths)} paths, in {args.out}",
          file=sys.stderr)


def read_rows(path):
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r["input"] for r in rows], [r["path"] for r in rows]


def peer(args):
    import numpy as np
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    # vdb's classifiers written in NumPy, shared with route-bench's reference.
    from peer_route_lda import nearest_centroid, nearest_examples, pooled_ledoit_wolf

    train_texts, train_paths = read_rows(args.train)
    test_texts, test_paths = read_rows(args.test)
    classes = sorted(set(train_paths))
    y = np.array([classes.index(p) for p in train_paths])
    yt = np.array([classes.index(p) for p in test_paths])
    model = SentenceTransformer(args.model, device="cpu")
    x, xt = (model.encode(texts, batch_size=64, normalize_embeddings=True).astype(np.float64)
             for texts in (train_texts, test_texts))
    lda, shrinkage = pooled_ledoit_wolf(x, y, xt, len(classes))
    logistic = LogisticRegression(max_iter=2000, class_weight="balanced").fit(x, y)
    predictions = {
        "nearest_centroid": nearest_centroid(x, y, xt, len(classes))[0],
        "logistic_regression": logistic.predict(xt),
        "shrunk_lda": lda,
        "nearest_examples": nearest_examples(x, y, xt, len(classes))[0],
    }
    report = {"train": len(y), "test": len(yt), "paths": len(classes),
              "ledoit_wolf_shrinkage": float(shrinkage)}
    for name, predicted in predictions.items():
        report[name] = {"accuracy": round(float(accuracy_score(yt, predicted)), 4),
                        "macro_f1": round(float(f1_score(yt, predicted, average="macro")), 4)}
    print(json.dumps(report))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    c = commands.add_parser("convert")
    source = c.add_mutually_exclusive_group(required=True)
    source.add_argument("--clinc", help="CLINC150's data_full.json (domains.json beside it)")
    source.add_argument("--banking77", help="the directory of Banking77's train.csv and test.csv")
    c.add_argument("--level", choices=("domain", "intent"), default="domain", help="CLINC150 only")
    c.add_argument("--per-path", type=int, default=0, help="training requests per path (0: all)")
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--out", required=True)
    p = commands.add_parser("peer")
    p.add_argument("train")
    p.add_argument("test")
    p.add_argument("--model", default=os.path.expanduser("~/.cache/vdb/models/all-MiniLM-L6-v2"))
    args = parser.parse_args()
    convert(args) if args.command == "convert" else peer(args)


if __name__ == "__main__":
    main()
