#!/usr/bin/env python3
"""Encoder peer: all-MiniLM-L6-v2 on ONNX Runtime (CPU, float32), the fastest common way
to serve a sentence-transformers model without PyTorch at inference time.

The model (BERT, mean pooling over the attention mask, L2 normalisation: the whole
sentence-transformers pipeline) is exported once with `torch.onnx.export` to --onnx
(default: a file in the system's temporary directory, reused when present). Texts are
tokenised with the model's own Hugging Face tokenizer, sorted by length and padded per
batch, as sentence-transformers does. Prints the JSON keys of ../shared/bench/peer_embed.py
(sentences_per_sec, latency_ms_p50, latency_ms_p95 as {"median", "min", "max"}), so
`encoder-bench --onnx-peer PYTHON` runs it in the same way.

    /work/peer-venv/bin/python Benchmarks/peers/peer_onnx.py passages.txt --batch 32 --threads 2
    /work/peer-venv/bin/python Benchmarks/peers/peer_onnx.py short.txt --batch1 --limit 200
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def default_model_dir():
    path = os.environ.get("VDB_MODEL_DIR") or os.path.expanduser("~/.cache/vdb/models/all-MiniLM-L6-v2")
    return path


def export(model_dir, path):
    """Writes the sentence pipeline (ids, mask → unit vectors) as ONNX to `path`."""
    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(model_dir).eval()

    class Sentence(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            tokens = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=1)

    ids = torch.ones(2, 8, dtype=torch.int64)
    partial = path + ".partial"
    kwargs = {"dynamo": False} if "dynamo" in torch.onnx.export.__code__.co_varnames else {}
    torch.onnx.export(
        Sentence(bert), (ids, torch.ones_like(ids)), partial,
        input_names=["input_ids", "attention_mask"], output_names=["embedding"],
        dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                      "attention_mask": {0: "batch", 1: "tokens"}, "embedding": {0: "batch"}},
        opset_version=17, **kwargs)
    os.replace(partial, path)


def stats(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="text file, one text per line")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    ap.add_argument("--reps", type=int, default=5, help="timed passes")
    ap.add_argument("--warmup", type=int, default=1, help="untimed passes first")
    ap.add_argument("--max-seq-length", type=int, default=256)
    ap.add_argument("--limit", type=int, default=0, help="only the first N texts")
    ap.add_argument("--batch1", action="store_true", help="one text per call: latency p50/p95")
    ap.add_argument("--model", default=default_model_dir())
    ap.add_argument("--onnx", default=os.path.join(tempfile.gettempdir(), "vdb-minilm-sentence.onnx"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", metavar="FILE", help="also write the JSON object to FILE")
    args = ap.parse_args()

    with open(args.input, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f if line.strip()]
    if args.limit:
        texts = texts[:args.limit]
    if not texts:
        sys.exit(f"no texts in {args.input}")

    import numpy as np
    import onnxruntime
    from transformers import AutoTokenizer

    if not os.path.exists(args.onnx):
        export(args.model, args.onnx)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(args.onnx, options, providers=["CPUExecutionProvider"])

    def encode(batch_texts, batch_size):
        order = sorted(range(len(batch_texts)), key=lambda i: -len(batch_texts[i]))
        out = [None] * len(batch_texts)
        for start in range(0, len(order), batch_size):
            members = order[start:start + batch_size]
            t = tokenizer([batch_texts[i] for i in members], padding=True, truncation=True,
                          max_length=args.max_seq_length, return_tensors="np")
            vectors = session.run(None, {"input_ids": t["input_ids"].astype(np.int64),
                                         "attention_mask": t["attention_mask"].astype(np.int64)})[0]
            for row, i in enumerate(members):
                out[i] = vectors[row]
        return out

    result = {"benchmark": "onnxruntime encode", "onnxruntime": onnxruntime.__version__,
              "threads": args.threads, "batch": 1 if args.batch1 else args.batch, "texts": len(texts)}
    if not args.batch1:
        for _ in range(args.warmup):
            encode(texts, args.batch)
        rates = []
        for _ in range(args.reps):
            start = time.perf_counter()
            encode(texts, args.batch)
            rates.append(len(texts) / (time.perf_counter() - start))
        result["sentences_per_sec"] = stats(rates)
    else:
        for _ in range(args.warmup):
            for text in texts[:20]:
                encode([text], 1)
        p50, p95 = [], []
        for _ in range(args.reps):
            latencies = []
            for text in texts:
                start = time.perf_counter()
                encode([text], 1)
                latencies.append((time.perf_counter() - start) * 1e3)
            p50.append(float(np.percentile(latencies, 50)))
            p95.append(float(np.percentile(latencies, 95)))
        result["latency_ms_p50"] = stats(p50)
        result["latency_ms_p95"] = stats(p95)
        result["sentences_per_sec"] = stats([1e3 / x for x in p50])
    text = json.dumps(result, indent=1)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    print(text if args.json else
          "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
