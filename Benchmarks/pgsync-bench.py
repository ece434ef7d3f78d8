#!/usr/bin/env python3
"""`vdb sync --postgres` on SciFact (docs/scale-out.md).

    .venv-pg/bin/python Benchmarks/pgsync-bench.py [--vdb .build/release/vdb]
        [--data ../shared/datasets/scifact-minilm] [--scifact ../shared/datasets/scifact]
        [--limit ROWS]

Builds a vdb collection of SciFact's all-MiniLM-L6-v2 vectors (titles and abstract
sentences, with their text and metadata: no embedding time), starts a throwaway
PostgreSQL + pgvector (tools/pg-test-server.py), and measures:

- sync time: first (table + HNSW index, and that index's build alone), unchanged, and
  incremental (1% of the rows rewritten, 0.2% deleted);
- agreement: top-10 of the 300 SciFact test queries in PostgreSQL by exact distance
  (no index) against vdb's exact top-10 (`vdb query --exact`);
- recall@10 of pgvector's HNSW (ef_search 40, its default, and 100) against its exact
  search.

Run it with the python that has pgserver (tools/setup.sh makes .venv-pg).
"""
import argparse
import gzip
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def read_vecs(path, kind="f"):
    data = Path(path).read_bytes()
    rows, offset = [], 0
    while offset < len(data):
        (dimension,) = struct.unpack_from("<i", data, offset)
        rows.append(list(struct.unpack_from(f"<{dimension}{kind}", data, offset + 4)))
        offset += 4 + 4 * dimension
    return rows


def write_fvecs(path, rows):
    with open(path, "wb") as out:
        for row in rows:
            out.write(struct.pack(f"<i{len(row)}f", len(row), *row))


def vdb(binary, *arguments):
    result = subprocess.run([binary, *arguments], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"vdb {' '.join(arguments)} failed ({result.returncode}): {result.stderr}")
    return result.stdout


def literal(vector):
    return "'[" + ",".join(repr(x) for x in vector) + "]'"


def cpu_flags():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return " ".join(sorted(f for f in flags if f.startswith(("avx", "fma", "sse4", "f16c"))))
    return "unknown"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vdb", default=str(ROOT / ".build/release/vdb"))
    parser.add_argument("--data", default=str(ROOT / "../shared/datasets/scifact-minilm"))
    parser.add_argument("--scifact", default=str(ROOT / "../shared/datasets/scifact"))
    parser.add_argument("--limit", type=int, default=None, help="rows of base.fvecs (default: all)")
    args = parser.parse_args()
    data = Path(args.data)

    base = read_vecs(data / "base.fvecs")[: args.limit]
    texts = [json.loads(line) for line in gzip.open(data / "base_texts.jsonl.gz", "rt")][: len(base)]
    test_ids = {line.split("\t")[0] for line in (Path(args.scifact) / "qrels/test.tsv").read_text().splitlines()[1:]}
    query_rows = [json.loads(line) for line in (data / "queries.jsonl").read_text().splitlines()]
    all_queries = read_vecs(data / "queries.fvecs")
    queries = [all_queries[q["row"]] for q in query_rows if q["query_id"] in test_ids]
    print(f"SciFact (all-MiniLM-L6-v2): {len(base)} rows of {len(base[0])} dimensions, {len(queries)} test queries")
    print(f"CPU flags: {cpu_flags()}; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}")

    work = Path(tempfile.mkdtemp(prefix="pgsync-bench-"))
    db = str(work / "db")
    corpus = work / "corpus.jsonl"
    with open(corpus, "w") as out:
        for vector, row in zip(base, texts):
            out.write(json.dumps({"id": str(row["row"]), "text": row["text"],
                                  "metadata": {"doc_id": row["doc_id"], "kind": row["kind"]},
                                  "vector": vector}) + "\n")
    vdb(args.vdb, "init", "--db", db, "--no-model")
    vdb(args.vdb, "collections", "create", "scifact", "--db", db, "--vectors", str(len(base[0])))
    vdb(args.vdb, "import", str(corpus), "-c", "scifact", "--db", db)

    server_dir = work / "pg"
    started = json.loads(subprocess.check_output(
        [sys.executable, str(ROOT / "tools/pg-test-server.py"), "start", str(server_dir)]))
    url = f"postgresql://postgres@/postgres?host={server_dir}&port={started['port']}"
    psql = [started["bin"] + "/psql", "-h", str(server_dir), "-p", str(started["port"]), "-U", "postgres",
            "-qAt", "-v", "ON_ERROR_STOP=1"]
    try:
        def sync(label):
            start = time.time()
            report = json.loads(vdb(args.vdb, "sync", "-c", "scifact", "--db", db, "--postgres", url, "--json"))
            wall = time.time() - start
            print(f"sync {label}: {wall:.2f} s wall ({report['seconds']:.2f} s in sync): "
                  f"{report['inserted']} inserted, {report['updated']} updated, {report['deleted']} deleted, "
                  f"{report['unchanged']} unchanged")
            return report

        first = sync("first (table + HNSW index)")
        # The index build alone, on a copy of the same rows, with the memory the sync gives it.
        kilobytes = min(len(base) * (4 * len(base[0]) + 1024) // 1024 * 5 // 4, 4 << 20)
        subprocess.run(psql, input=f"CREATE TABLE index_probe AS SELECT * FROM {first['physical_table']};",
                       text=True, check=True)
        start = time.time()
        subprocess.run(psql, input=f"SET maintenance_work_mem = '{kilobytes}kB';\n"
                       "CREATE INDEX ON index_probe USING hnsw (embedding vector_cosine_ops);",
                       text=True, check=True)
        print(f"  of which the HNSW build alone (measured again on a copy): {time.time() - start:.2f} s")
        subprocess.run(psql, input="DROP TABLE index_probe;", text=True, check=True)
        sync("unchanged")
        rng = random.Random(1)
        changed = rng.sample(range(len(base)), len(base) // 100)
        with open(work / "changed.jsonl", "w") as out:
            for row in changed:
                out.write(json.dumps({"id": str(row), "text": texts[row]["text"] + " (revised)",
                                      "metadata": {"doc_id": texts[row]["doc_id"], "kind": "revised"},
                                      "vector": base[row]}) + "\n")
        vdb(args.vdb, "import", str(work / "changed.jsonl"), "-c", "scifact", "--db", db)
        deleted = [str(row) for row in rng.sample(range(len(base)), len(base) // 500)]
        vdb(args.vdb, "delete", "-c", "scifact", "--db", db, *deleted)
        sync("incremental (1% rewritten, 0.2% deleted)")

        write_fvecs(work / "queries.fvecs", queries)
        start = time.time()
        exact_vdb = [[hit["id"] for hit in json.loads(line)["hits"]] for line in vdb(
            args.vdb, "query", "-c", "scifact", "--db", db, "--vectors", str(work / "queries.fvecs"),
            "--exact", "--no-log", "-k", "10", "--json").splitlines()]
        print(f"vdb exact: {len(queries)} queries in {time.time() - start:.2f} s (one process)")

        def pg_top10(settings):
            sql = settings + "".join(
                f"SELECT string_agg(id, ',') FROM (SELECT id FROM scifact ORDER BY embedding <=> {literal(q)} LIMIT 10) t;\n"
                for q in queries)
            start = time.time()
            lines = subprocess.run(psql, input=sql, capture_output=True, text=True, check=True).stdout.split()
            return [line.split(",") for line in lines], time.time() - start

        exact_pg, seconds = pg_top10("SET enable_indexscan = off;\n")
        print(f"pgvector exact: {len(queries)} queries in {seconds:.2f} s")

        def overlap(found, truth):
            return sum(len(set(a) & set(b)) for a, b in zip(found, truth)) / (10 * len(truth))

        print(f"top-10 overlap, pgvector exact vs vdb exact: {overlap(exact_pg, exact_vdb):.4f}")
        for ef in (40, 100):
            hnsw, seconds = pg_top10(f"SET hnsw.ef_search = {ef};\n")
            print(f"pgvector HNSW (m 16, ef_construction 64, ef_search {ef}): recall@10 "
                  f"{overlap(hnsw, exact_pg):.4f} against its exact search, {len(queries)} queries in {seconds:.2f} s")
    finally:
        subprocess.run([sys.executable, str(ROOT / "tools/pg-test-server.py"), "stop", str(server_dir)])
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
