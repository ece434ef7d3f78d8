#!/usr/bin/env python3
"""SetFit-style contrastive tuning for routers: does tuning the encoder on pairs beat the
frozen embeddings' nearest centroid with few inputs per path?

SetFit (Tunstall et al. 2022, "Efficient Few-Shot Learning Without Prompts") fine-tunes the
sentence encoder on pairs made from the labelled inputs — same path: target cosine 1,
different paths: target cosine 0 — with the cosine-similarity loss

    L = mean over pairs (cos(f(a), f(b)) − t)²,

then fits a classifier head on the tuned embeddings. Written here with sentence-transformers
and PyTorch (not the `setfit` package) at the paper's and the package's defaults, nothing
tuned to these sets: 20 pair-iterations per training input (each gives one same-path and
one different-path pair, partners drawn at random), one epoch, batches of 16, AdamW with
learning rate 2e-5 and weight decay 0.01 (not on biases and LayerNorm), linear warm-up
over the first 10% of the steps then linear decay, gradients clipped to norm 1, BERT's
dropout on. The model is all-MiniLM-L6-v2 from vdb's model directory.

Both of route-bench's sets (Benchmarks/peers/peer_route_lda.py builds them), with the same
stratified 25% held-out splits as that script (scikit-learn's, seeds 1…N). Per split, held-out
macro-F1 of nearest centroid, shrunk LDA (pooled Ledoit–Wolf, vdb's method) and
scikit-learn's default logistic regression (SetFit's head) on the frozen embeddings and on
the embeddings of the encoder tuned on that split's training inputs only. The held-out
inputs choose nothing.

Run from the project root:

    /work/peer-venv/bin/python Benchmarks/peers/peer_route_setfit.py [--seeds 10] \\
        [--scifact-seeds 3] [--json]
"""
import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedShuffleSplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_route_lda import docs_examples, nearest_centroid, pooled_ledoit_wolf, scifact_examples  # noqa: E402


def logistic_regression(x, y, held, classes):
    return LogisticRegression().fit(x, y).predict(held), None


HEADS = {
    "nearest_centroid": nearest_centroid,
    "shrunk_lda": lambda x, y, held, classes: pooled_ledoit_wolf(x, y, held, classes),
    "logistic_regression": logistic_regression,
}


def pairs(texts, labels, iterations, rng):
    """SetFit's pairs: per iteration and input, one partner from its path (not itself) with
    target 1 and one from another path with target 0; shuffled."""
    by_label = {c: [i for i, l in enumerate(labels) if l == c] for c in set(labels)}
    result = []
    for _ in range(iterations):
        for i, label in enumerate(labels):
            same = [j for j in by_label[label] if j != i]
            other = [j for j in range(len(labels)) if labels[j] != label]
            result.append((texts[i], texts[rng.choice(same)], 1.0))
            result.append((texts[i], texts[rng.choice(other)], 0.0))
    rng.shuffle(result)
    return result


def tune(model_path, texts, labels, seed, iterations, learning_rate, batch):
    """The encoder after one epoch of the cosine-similarity loss on the training pairs."""
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = SentenceTransformer(model_path, device="cpu")
    examples = pairs(texts, list(labels), iterations, rng)
    steps = math.ceil(len(examples) / batch)
    no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
    named = list(model.named_parameters())
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for n, p in named if not any(k in n for k in no_decay)], "weight_decay": 0.01},
            {"params": [p for n, p in named if any(k in n for k in no_decay)], "weight_decay": 0.0},
        ],
        lr=learning_rate,
    )
    warmup = math.ceil(0.1 * steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: s / max(1, warmup) if s < warmup else max(0.0, (steps - s) / max(1, steps - warmup))
    )
    model.train()
    losses = []
    for start in range(0, len(examples), batch):
        chunk = examples[start : start + batch]
        a = model(model.preprocess([e[0] for e in chunk]))["sentence_embedding"]
        b = model(model.preprocess([e[1] for e in chunk]))["sentence_embedding"]
        target = torch.tensor([e[2] for e in chunk])
        loss = torch.nn.functional.mse_loss(torch.cosine_similarity(a, b), target)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if len(losses) % 100 == 0:
            print(f"  step {len(losses)} of {steps}: loss {np.mean(losses[-100:]):.3f}", file=sys.stderr)
    model.eval()
    return model, losses, steps


def embed(model, texts):
    with torch.no_grad():
        return model.encode(texts, normalize_embeddings=True, batch_size=64).astype(np.float64)


def evaluate(name, texts, y, seeds, args):
    from sentence_transformers import SentenceTransformer

    classes = int(y.max()) + 1
    frozen = embed(SentenceTransformer(args.model, device="cpu"), texts)
    scores = {f"{kind}_{head}": [] for kind in ("frozen", "tuned") for head in HEADS}
    seconds, first_losses, last_losses = [], [], []
    for seed in range(args.first_seed, args.first_seed + seeds):
        split = StratifiedShuffleSplit(n_splits=1, test_size=0.25, random_state=seed)
        train, held = next(split.split(frozen, y))
        began = time.time()
        model, losses, steps = tune(
            args.model, [texts[i] for i in train], y[train], seed, args.iterations, args.lr, args.batch)
        tuned = embed(model, texts)
        seconds.append(time.time() - began)
        first_losses.append(float(np.mean(losses[: max(1, steps // 10)])))
        last_losses.append(float(np.mean(losses[-max(1, steps // 10):])))
        for kind, x in (("frozen", frozen), ("tuned", tuned)):
            for head, method in HEADS.items():
                predicted, _ = method(x[train], y[train], x[held], classes)
                scores[f"{kind}_{head}"].append(float(f1_score(y[held], predicted, average="macro")))
        line = "  ".join(f"{k} {v[-1]:.3f}" for k, v in scores.items())
        print(f"{name} seed {seed}: {steps} steps, {seconds[-1]:.0f} s; {line}", file=sys.stderr)
    summary = {k: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, "values": v}
               for k, v in scores.items()}
    summary.update(
        train_examples=int(len(train)), heldout_examples=int(len(held)), seeds=seeds,
        pairs=2 * args.iterations * int(len(train)), tuning_seconds=float(np.mean(seconds)),
        loss_first_tenth=float(np.mean(first_losses)), loss_last_tenth=float(np.mean(last_losses)))
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="splits of the docs set (0 skips it)")
    parser.add_argument("--scifact-seeds", type=int, default=3, help="splits of the SciFact set (0 skips it)")
    parser.add_argument("--first-seed", type=int, default=1, help="the first split's seed (the splits are first…first+N−1)")
    parser.add_argument("--iterations", type=int, default=20, help="pair-iterations per training input")
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--model", default=os.path.expanduser("~/.cache/vdb/models/all-MiniLM-L6-v2"))
    parser.add_argument("--datasets", default="../shared/datasets")
    parser.add_argument("--threads", type=int, default=1,
                        help="PyTorch threads (1: on the shared 2-core VM two threads ran 2-5x slower per step)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import sentence_transformers

    result = {"sentence_transformers": sentence_transformers.__version__, "torch": torch.__version__,
              "torch_threads": torch.get_num_threads(), "sets": {}}
    if args.seeds > 0:
        texts, y = docs_examples()
        result["sets"]["docs"] = evaluate("docs", texts, y, args.seeds, args)
    if args.scifact_seeds > 0:
        texts, _, y = scifact_examples(args.datasets)
        result["sets"]["scifact"] = evaluate("scifact", texts, y, args.scifact_seeds, args)
    if args.json:
        print(json.dumps(result))
        return
    print(f"held-out macro-F1 (mean ± sd), sentence-transformers {sentence_transformers.__version__}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    for name, s in result["sets"].items():
        print(f"\n{name} set: {s['train_examples']} train / {s['heldout_examples']} held out, {s['seeds']} splits; "
              f"{s['pairs']} pairs, {s['tuning_seconds']:.0f} s tuning per split; "
              f"loss {s['loss_first_tenth']:.3f} → {s['loss_last_tenth']:.3f} (first → last tenth of the steps)")
        base = s["frozen_nearest_centroid"]["values"]
        for key in (k for k in s if k.startswith(("frozen_", "tuned_"))):
            values = s[key]["values"]
            ahead = sum(a > b for a, b in zip(values, base))
            behind = sum(a < b for a, b in zip(values, base))
            print(f"  {key:<28} {s[key]['mean']:.3f} ± {s[key]['sd']:.3f}  "
                  f"(against the frozen centroids: {ahead} ahead, {behind} behind)")


if __name__ == "__main__":
    main()
