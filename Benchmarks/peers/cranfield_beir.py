#!/usr/bin/env python3
"""The Cranfield collection as a BEIR directory: a second retrieval domain for `vdb train`.

Cranfield (Cleverdon, 1960s) is 1,400 abstracts of aerodynamics papers, 225 questions
written by their authors, and 1,612 judgements with codes 1–4 (`cran.all.1400`,
`cran.qry`, `cranqrel`; many IR course repositories on GitHub hold a copy, e.g. the
`cran/` directory of github.com/hamza-mughees/Apache-Lucene-Cranfield). Not shipped with
vdb; give the directory of a clone. Nothing in the project depends on it.

Written to OUT in BEIR's layout, which `vdb import --beir`, `vdb eval --beir`,
`tools/scifact.sh` (with SCIFACT=OUT) and `../shared/bench/peer_finetune.py` read:

- `corpus.jsonl`: `{"_id", "title", "text"}`, the `.T` field as the title and the `.W`
  field, without its copy of the title, as the text.
- `queries.jsonl`: `{"_id", "text"}`, numbered 1…225 in file order, as `cranqrel`
  numbers them (the `.I` numbers of `cran.qry` skip values).
- `qrels/train.tsv`, `qrels/test.tsv`: the judgements with codes 1–4 (from "a complete
  answer" to "of minimum interest"), each with score 1: vdb's and sentence-transformers'
  evaluators count any judged document as relevant; code -1 is left out. The questions are
  dealt into test (`--test`, default 100) and train (the rest) by a seeded shuffle.

    python Benchmarks/peers/cranfield_beir.py /path/to/clone/cran /tmp/cranfield
    SCIFACT=/tmp/cranfield tools/scifact.sh /tmp/cranfield.vdb
    python ../shared/bench/peer_finetune.py /tmp/cranfield --epochs 3 --hard-negatives 1 --lr 5e-5
"""
import argparse
import json
import os
import random
import re


def records(path):
    """The records of a Cranfield file: `.I id`, then fields `.T .A .B .W`, each a dict."""
    found, current, field = [], None, None
    with open(path, encoding="latin-1") as f:
        for line in f:
            marker = re.match(r"^\.([ITABW])\b ?(.*)$", line.rstrip("\n"))
            if marker and marker.group(1) == "I":
                current, field = {"I": marker.group(2).strip()}, None
                found.append(current)
            elif marker:
                field = marker.group(1)
                current[field] = ""
            elif field:
                current[field] += line.strip() + " "
    return found


def spaced(text):
    return re.sub(r"\s+", " ", text).strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clone", help="directory with cran.all.1400, cran.qry and cranqrel")
    parser.add_argument("out", help="the BEIR directory to write")
    parser.add_argument("--test", type=int, default=100, help="questions in the test split")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.makedirs(os.path.join(args.out, "qrels"), exist_ok=True)

    with open(os.path.join(args.out, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for doc in records(os.path.join(args.clone, "cran.all.1400")):
            title, text = spaced(doc.get("T", "")), spaced(doc.get("W", ""))
            if title and text.startswith(title):
                text = text[len(title):].strip()
            f.write(json.dumps({"_id": doc["I"], "title": title, "text": text}) + "\n")
    questions = records(os.path.join(args.clone, "cran.qry"))
    with open(os.path.join(args.out, "queries.jsonl"), "w", encoding="utf-8") as f:
        for number, question in enumerate(questions, 1):
            f.write(json.dumps({"_id": str(number), "text": spaced(question["W"])}) + "\n")

    relevant = {}
    with open(os.path.join(args.clone, "cranqrel"), encoding="latin-1") as f:
        for line in f:
            query, doc, code = line.split()[:3]
            if int(code) > 0:
                relevant.setdefault(query, []).append(doc)
    order = sorted(relevant, key=int)
    shuffled = order[:]
    random.Random(args.seed).shuffle(shuffled)
    test = set(shuffled[: args.test])
    for split, keep in (("train", lambda q: q not in test), ("test", lambda q: q in test)):
        with open(os.path.join(args.out, "qrels", split + ".tsv"), "w", encoding="utf-8") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for query in filter(keep, order):
                f.writelines(f"{query}\t{doc}\t1\n" for doc in relevant[query])
    judged = sum(len(docs) for docs in relevant.values())
    print(f"{len(questions)} questions ({len(test)} test), {judged} judgements -> {args.out}")


if __name__ == "__main__":
    main()
