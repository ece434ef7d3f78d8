#!/usr/bin/env python3
"""`vdb serve` against Chroma's server (PyPI `chromadb`), same vectors, same queries, wrk.

Both servers hold the 49,910 real all-MiniLM-L6-v2 vectors of `scifact-minilm` (cosine)
and answer its 1,109 query vectors, k = 10, over HTTP on loopback. Chroma embeds text in
its client, not its server, so the comparison is by vector; vdb's text queries (embedded
by the server) are in serve-bench. Each cell runs vdb, then Chroma, back to back; recall@10
of each server's answers against the exact neighbours (`gt.ivecs`) is measured first,
one query at a time, so speed is compared at known quality.

    swift build -c release --product vdb
    /work/peer-venv/bin/python Benchmarks/peers/peer_chroma.py \\
        --vdb .build/release/vdb --data ../shared/datasets/scifact-minilm [--dir /tmp/chroma-bench]

The databases are built once in --dir and kept. wrk comes from Debian (`apt-get install wrk`).
"""
import argparse
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request


def read_vecs(path, kind):
    rows = []
    with open(path, "rb") as f:
        data = f.read()
    offset = 0
    while offset < len(data):
        (dimension,) = struct.unpack_from("<i", data, offset)
        offset += 4
        rows.append(list(struct.unpack_from("<%d%s" % (dimension, kind), data, offset)))
        offset += 4 * dimension
    return rows


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body):
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as reply:
        return json.loads(reply.read())


def wait_until_up(url, process, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            sys.exit("server exited: %s" % url)
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.3)
    sys.exit("server did not answer: %s" % url)


def start_vdb(binary, db):
    port = free_port()
    process = subprocess.Popen(
        [binary, "serve", "--db", db, "--port", str(port)], stdout=subprocess.DEVNULL)
    base = "http://127.0.0.1:%d" % port
    wait_until_up(base + "/status", process)
    return process, base


def start_chroma(path):
    port = free_port()
    chroma = os.path.join(os.path.dirname(sys.executable), "chroma")
    process = subprocess.Popen(
        [chroma, "run", "--path", path, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = "http://127.0.0.1:%d/api/v2/tenants/default_tenant/databases/default_database" % port
    wait_until_up("http://127.0.0.1:%d/api/v2/heartbeat" % port, process)
    return process, base


def stop(process):
    process.terminate()
    process.wait(timeout=120)


def wrk(url, bodies, connections, seconds, work):
    bodies_file = os.path.join(work, "bodies.jsonl")
    with open(bodies_file, "w") as f:
        f.write("\n".join(json.dumps(b) for b in bodies) + "\n")
    script = os.path.join(work, "post.lua")
    with open(script, "w") as f:
        f.write(
            'local bodies = {}\n'
            'for line in io.lines(os.getenv("BODIES")) do bodies[#bodies + 1] = line end\n'
            'local index = 0\n'
            'setup = function(thread) thread:set("offset", math.random(#bodies)) end\n'
            'init = function() index = tonumber(offset) or 0 end\n'
            'request = function()\n'
            '  index = index % #bodies + 1\n'
            '  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[index])\n'
            'end\n')
    output = subprocess.run(
        ["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", "%ds" % seconds,
         "--latency", "--timeout", "30s", "-s", script, url],
        env=dict(os.environ, BODIES=bodies_file), capture_output=True, text=True, check=True
    ).stdout

    def number(label):
        line = next((l for l in output.splitlines() if label in l), None)
        if line is None:
            return None
        field = line.split()[-1]
        scale = 0.001 if field.endswith("us") else 1 if field.endswith("ms") else (
            1000 if field.endswith("s") else 1)
        return float(re.sub(r"[^0-9.]", "", field)) * scale

    errors = number("Non-2xx") or 0
    return number("Requests/sec:"), number(" 50% "), number(" 99% "), int(errors)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vdb", required=True)
    parser.add_argument("--data", required=True, help="the scifact-minilm directory")
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "chroma-bench"))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", default="1,8,64")
    parser.add_argument("--ef", type=int, default=64, help="vdb's ef (its default)")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    base = read_vecs(os.path.join(args.data, "base.fvecs"), "f")
    queries = read_vecs(os.path.join(args.data, "queries.fvecs"), "f")
    truth = [row[:10] for row in read_vecs(os.path.join(args.data, "gt.ivecs"), "i")]

    # vdb: the vectors imported into collection `minilm` (ids are row numbers).
    db = os.path.join(args.dir, "vdb")
    if not os.path.exists(db):
        start = time.time()
        subprocess.run([args.vdb, "init", "--db", db, "--no-model"], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([args.vdb, "import", "--vectors", os.path.join(args.data, "base.fvecs"),
                        "-c", "minilm", "--metric", "cosine", "--db", db], check=True,
                       stdout=subprocess.DEVNULL)
        print("vdb: imported %d vectors in %.1f s" % (len(base), time.time() - start),
              file=sys.stderr)

    # Chroma: the same vectors, ids the row numbers, cosine space, its default HNSW.
    chroma_path = os.path.join(args.dir, "chroma")
    fresh = not os.path.exists(chroma_path)
    chroma, chroma_base = start_chroma(chroma_path)
    try:
        collections = json.loads(urllib.request.urlopen(chroma_base + "/collections").read())
        found = [c for c in collections if c["name"] == "minilm"]
        if found and not fresh:
            collection = found[0]["id"]
        else:
            collection = post(chroma_base + "/collections", {
                "name": "minilm", "configuration": {"hnsw": {"space": "cosine"}},
                "get_or_create": True})["id"]
            start = time.time()
            for first in range(0, len(base), 1000):
                rows = base[first:first + 1000]
                post(chroma_base + "/collections/%s/add" % collection, {
                    "ids": [str(i) for i in range(first, first + len(rows))],
                    "embeddings": rows})
            print("chroma: added %d vectors in %.1f s" % (len(base), time.time() - start),
                  file=sys.stderr)
    finally:
        stop(chroma)

    vdb_bodies = [{"vector": q, "k": 10, "ef": args.ef, "log": False} for q in queries]
    chroma_bodies = [{"query_embeddings": [q], "n_results": 10, "include": ["distances"]}
                     for q in queries]

    def recall(answers):
        hits = sum(len(set(a) & set(t)) for a, t in zip(answers, truth))
        return hits / (10 * len(truth))

    rows = []
    with tempfile.TemporaryDirectory() as work:
        vdb, vdb_base = start_vdb(args.vdb, db)
        vdb_url = vdb_base + "/collections/minilm/query"
        answers = [[int(h["id"]) for h in post(vdb_url, b)["hits"]] for b in vdb_bodies]
        vdb_recall = recall(answers)
        stop(vdb)
        chroma, chroma_base = start_chroma(chroma_path)
        chroma_url = chroma_base + "/collections/%s/query" % collection
        answers = [[int(i) for i in post(chroma_url, b)["ids"][0]] for b in chroma_bodies]
        chroma_recall = recall(answers)
        stop(chroma)
        for connections in [int(c) for c in args.connections.split(",")]:
            vdb, vdb_base = start_vdb(args.vdb, db)
            ours = wrk(vdb_base + "/collections/minilm/query", vdb_bodies, connections,
                       args.seconds, work)
            stop(vdb)
            chroma, chroma_base = start_chroma(chroma_path)
            theirs = wrk(chroma_base + "/collections/%s/query" % collection, chroma_bodies,
                         connections, args.seconds, work)
            stop(chroma)
            rows.append((connections, ours, theirs))

    flags = " ".join(
        f for f in open("/proc/cpuinfo").read().split("\nflags")[1].split("\n")[0].split()
        if f == "avx2" or f == "fma" or f.startswith("avx512"))
    print("peer_chroma: %d vectors x 384 (scifact-minilm), %d query vectors, k 10, %d s a cell; "
          "%d cores; CPU flags: %s" % (len(base), len(queries), args.seconds, os.cpu_count(),
                                       flags))
    print("recall@10 against exact: vdb (ef %d) %.4f, Chroma %s %.4f" % (
        args.ef, vdb_recall, getattr(__import__("chromadb"), "__version__", "?"), chroma_recall))
    print("| connections | vdb q/s | vdb p50 / p99 ms | Chroma q/s | Chroma p50 / p99 ms | vdb / Chroma |")
    print("|---|---|---|---|---|---|")
    for connections, ours, theirs in rows:
        note = "".join(" (%s: %d non-2xx)" % (name, r[3]) for name, r in
                       (("vdb", ours), ("Chroma", theirs)) if r[3])
        print("| %d | %.0f | %.1f / %.1f | %.0f | %.1f / %.1f | %.2f× |%s" % (
            connections, ours[0], ours[1], ours[2], theirs[0], theirs[1], theirs[2],
            ours[0] / theirs[0], note))


if __name__ == "__main__":
    main()
