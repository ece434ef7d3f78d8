#!/usr/bin/env python3
"""hnswlib's queries timed in wall-clock and in CPU time of the querying thread.

On a machine shared with other jobs, wall-clock q/s mostly measures the scheduler;
CPU time (time.thread_time) does not count the time the thread waits for a core.
index-bench prints the same two figures for vdb ("CPU q/s"). The index is one that
peer_ann.py kept (--keep --work-dir DIR: DIR/hnswlib-t1/index.bin) or, without
--index, one built here with 1 thread.

  python Benchmarks/peers/hnswlib_cpu.py --base B.fvecs --query Q.fvecs --gt GT.ivecs \\
      --index /tmp/peer/hnswlib-t1/index.bin --efs 16,24,32,64 --reps 5
"""
import argparse
import json
import time

import hnswlib
import numpy as np


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    d = int(raw[0])
    return raw.reshape(-1, d + 1)[:, 1:].copy().view(dtype)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--query", required=True)
    ap.add_argument("--gt", required=True)
    ap.add_argument("--index", help="hnswlib index file (else built here: M 16, efC 200)")
    ap.add_argument("--space", default="cosine", choices=["cosine", "ip", "l2"])
    ap.add_argument("--efs", default="16,24,32,64")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()

    X = read_vecs(args.base, np.float32)
    Q = read_vecs(args.query, np.float32)
    gt = read_vecs(args.gt, np.int32)[:, : args.k]
    index = hnswlib.Index(space=args.space, dim=X.shape[1])
    if args.index:
        index.load_index(args.index, max_elements=len(X))
    else:
        index.init_index(max_elements=len(X), M=16, ef_construction=200, random_seed=100)
        index.add_items(X, np.arange(len(X)), num_threads=1)
    del X
    rows = []
    for ef in [int(e) for e in args.efs.split(",")]:
        index.set_ef(ef)
        index.knn_query(Q[:100], k=args.k, num_threads=1)  # warm-up
        wall, cpu = [], []
        for _ in range(args.reps):
            w0, c0 = time.perf_counter(), time.thread_time()
            found, _ = index.knn_query(Q, k=args.k, num_threads=1)
            cpu.append(len(Q) / (time.thread_time() - c0))
            wall.append(len(Q) / (time.perf_counter() - w0))
        recall = np.mean([len(set(f) & set(g)) / args.k for f, g in zip(found, gt)])
        rows.append({"ef": ef, "recall": float(recall), "qps": wall, "cpu_qps": cpu})
        print(f"hnswlib ef {ef}: recall@{args.k} {recall:.4f}, q/s median {np.median(wall):,.0f} "
              f"[{min(wall):,.0f}-{max(wall):,.0f}], CPU q/s median {np.median(cpu):,.0f} "
              f"[{min(cpu):,.0f}-{max(cpu):,.0f}]", flush=True)
    for key in ("qps", "cpu_qps"):
        for a, b in zip(rows, rows[1:]):
            if a["recall"] < 0.95 <= b["recall"]:
                qa, qb = np.median(a[key]), np.median(b[key])
                x = qa + (0.95 - a["recall"]) * (qb - qa) / (b["recall"] - a["recall"])
                print(f"hnswlib {key.replace('_', ' ')} at recall@{args.k} 0.95: {x:,.0f} "
                      f"(between ef {a['ef']} and {b['ef']})")
    print(json.dumps({"hnswlib": hnswlib.__version__ if hasattr(hnswlib, "__version__") else "?",
                      "rows": rows}))


if __name__ == "__main__":
    main()
