#!/usr/bin/env python3
"""BM25 peers on a BEIR data set: tantivy (Rust, via PyPI `tantivy`) and bm25s.

The counterpart of `swift run -c release search-bench`: index build time, nDCG@10,
MRR@10 and Recall@100 on the split's queries, and single-thread queries/s (one query
at a time, top 10). Run from the project root with the peers' venv:

    /work/peer-venv/bin/python Benchmarks/peers/peer_bm25.py --beir ../shared/datasets/scifact

Both peers get the same analysis vdb does where they allow it: English Snowball
stems and lower case; bm25s also drops its English stop words (tantivy's `en_stem`
tokenizer keeps them). tantivy's BM25 is fixed at k1 = 1.2, b = 0.75; bm25s runs
Lucene's formula at the same k1 and b as vdb's defaults (0.9, 0.4), and at its own.
"""
import argparse
import json
import math
import os
import re
import sys
import time


def read_beir(directory, split):
    corpus, queries, qrels = {}, {}, {}
    with open(os.path.join(directory, "corpus.jsonl"), encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            corpus[str(d["_id"])] = (d.get("title", "") + " " + d["text"]).strip()
    with open(os.path.join(directory, "queries.jsonl"), encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            queries[str(d["_id"])] = d["text"]
    with open(os.path.join(directory, "qrels", split + ".tsv"), encoding="utf-8") as f:
        for number, line in enumerate(f):
            fields = line.rstrip("\r\n").split("\t")
            if number == 0 and not fields[2].strip().lstrip("-").isdigit():
                continue
            qrels.setdefault(fields[0], {})[fields[1]] = int(fields[2])
    qrels = {q: r for q, r in qrels.items() if q in queries and any(g > 0 for g in r.values())}
    return corpus, queries, qrels


def metrics(results, qrels):
    """Mean nDCG@10, MRR@10 and Recall@100 (as sentence-transformers computes them)."""
    ndcg = mrr = recall = 0.0
    for qid, relevant in qrels.items():
        ranked = results.get(qid, [])
        gains = [relevant.get(doc, 0) for doc in ranked[:10]]
        dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
        ideal = sorted(relevant.values(), reverse=True)[:10]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        ndcg += dcg / idcg if idcg > 0 else 0
        mrr += next((1 / (i + 1) for i, doc in enumerate(ranked[:10]) if relevant.get(doc, 0) > 0), 0)
        positives = {d for d, g in relevant.items() if g > 0}
        recall += len(positives & set(ranked[:100])) / len(positives)
    n = len(qrels)
    return {"ndcg@10": ndcg / n, "mrr@10": mrr / n, "recall@100": recall / n, "queries": n}


def timed_queries(run_one, texts, seconds):
    ran, start = 0, time.perf_counter()
    while True:
        for text in texts:
            run_one(text)
        ran += len(texts)
        if time.perf_counter() - start >= seconds:
            return ran / (time.perf_counter() - start)


def tantivy_peer(corpus, queries, qrels, seconds):
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw")
    builder.add_text_field("body", stored=False, tokenizer_name="en_stem")
    schema = builder.build()
    start = time.perf_counter()
    index = tantivy.Index(schema)
    writer = index.writer(heap_size=200_000_000, num_threads=1)
    for doc_id, text in corpus.items():
        writer.add_document(tantivy.Document(id=doc_id, body=text))
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    build = time.perf_counter() - start
    searcher = index.searcher()

    def search(text, k):
        # The query parser's syntax characters would be operators: keep words only.
        words = re.sub(r"[^\w]+", " ", text).strip() or "_"
        hits = searcher.search(index.parse_query(words, ["body"]), k).hits
        return [searcher.doc(address)["id"][0] for _, address in hits]

    results = {qid: search(queries[qid], 100) for qid in qrels}
    report = metrics(results, qrels)
    texts = [queries[qid] for qid in sorted(qrels)]
    report.update(
        peer="tantivy " + getattr(tantivy, "__version__", "?"), k1=1.2, b=0.75,
        index_build_seconds=build,
        queries_per_second=timed_queries(lambda t: search(t, 10), texts, seconds))
    return report


def bm25s_peer(corpus, queries, qrels, seconds, k1, b):
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    ids = list(corpus)
    start = time.perf_counter()
    tokens = bm25s.tokenize([corpus[i] for i in ids], stopwords="en", stemmer=stemmer,
                            show_progress=False)
    retriever = bm25s.BM25(method="lucene", k1=k1, b=b)
    retriever.index(tokens, show_progress=False)
    build = time.perf_counter() - start

    def search(text, k):
        query = bm25s.tokenize([text], stopwords="en", stemmer=stemmer, show_progress=False)
        if not query.vocab:
            return []
        documents, _ = retriever.retrieve(query, k=k, n_threads=1, show_progress=False)
        return [ids[i] for i in documents[0]]

    results = {qid: search(queries[qid], 100) for qid in qrels}
    report = metrics(results, qrels)
    texts = [queries[qid] for qid in sorted(qrels)]
    report.update(
        peer="bm25s " + bm25s.__version__, k1=k1, b=b, index_build_seconds=build,
        queries_per_second=timed_queries(lambda t: search(t, 10), texts, seconds))
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--beir", required=True, help="a BEIR directory")
    parser.add_argument("--split", default="test")
    parser.add_argument("--seconds", type=float, default=5.0, help="minimum time per q/s figure")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    corpus, queries, qrels = read_beir(args.beir, args.split)
    print(f"{len(corpus)} documents, {len(qrels)} judged {args.split} queries", file=sys.stderr)
    reports = [tantivy_peer(corpus, queries, qrels, args.seconds)]
    for k1, b in [(0.9, 0.4), (1.5, 0.75)]:
        try:
            reports.append(bm25s_peer(corpus, queries, qrels, args.seconds, k1, b))
        except ImportError as error:
            print(f"bm25s skipped: {error}", file=sys.stderr)
            break
    flags = next((l for l in open("/proc/cpuinfo") if l.startswith("flags")), "")
    cpu = " ".join(f for f in flags.split()[2:] if f.startswith("avx") or f == "fma")
    if args.json:
        print(json.dumps({"cpu_flags": cpu, "load": os.getloadavg()[0], "peers": reports}))
        return
    print(f"BM25 peers on {args.beir} ({args.split}); CPU flags: {cpu}; load {os.getloadavg()[0]:.1f}")
    for r in reports:
        print(f"  {r['peer']:<16} k1 {r['k1']:<4} b {r['b']:<5} build {r['index_build_seconds']:6.2f} s  "
              f"nDCG@10 {r['ndcg@10']:.4f}  MRR@10 {r['mrr@10']:.4f}  R@100 {r['recall@100']:.4f}  "
              f"{r['queries_per_second']:8.0f} q/s")


if __name__ == "__main__":
    main()
