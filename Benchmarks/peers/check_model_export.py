#!/usr/bin/env python3
"""Does a model written by `vdb models export` load in sentence-transformers and embed
like vdb?

Loads DIR with `SentenceTransformer(DIR)`, embeds the golden texts (the reference
file's 22 texts, long and truncated ones among them) and compares, text by text, with
`vdb embed --model DIR` and with the reference embeddings. Prints the lowest cosine of
each pair; the issue's bar is 0.9999. Run from the project root with the peers' venv:

    vdb models export 1 /tmp/exported --db notes.vdb
    /work/peer-venv/bin/python Benchmarks/peers/check_model_export.py /tmp/exported \
        --vdb .build-tests/release/vdb \
        --reference ../shared/reference/minilm_reference_embeddings.json

For a fine-tuned version the reference no longer applies; the vdb comparison does.
"""
import argparse
import json
import subprocess

import numpy as np
from sentence_transformers import SentenceTransformer


def cosines(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory")
    parser.add_argument("--vdb", default="vdb")
    parser.add_argument("--reference", required=True)
    args = parser.parse_args()

    with open(args.reference, encoding="utf-8") as f:
        items = json.load(f)["items"]
    texts = [item["text"] for item in items]
    peer = SentenceTransformer(args.directory, device="cpu").encode(texts)
    # As arguments: some texts hold newlines, one is empty.
    lines = subprocess.run(
        [args.vdb, "embed", "--model", args.directory, "--json", "--", *texts],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    vdb = [json.loads(line)["vector"] for line in lines]
    reference = [item["embedding"] for item in items]
    for name, values in [("vdb", vdb), ("reference", reference)]:
        c = cosines(peer, values)
        print(f"sentence-transformers vs {name}: min cosine {c.min():.8f} over {len(c)} texts")


if __name__ == "__main__":
    main()
