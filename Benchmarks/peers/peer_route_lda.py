#!/usr/bin/env python3
"""Router classifiers in scikit-learn on the same embeddings: the reference for
`route-bench`'s nearest centroid and shrunk LDA (Sources/Training/LinearDiscriminant.swift).

Both of route-bench's sets, embedded with all-MiniLM-L6-v2: the docs set
(tools/route-examples.jsonl, each input's best path; embedded here by
sentence-transformers from vdb's model directory) and the SciFact set (is dense sentence
search enough for a claim, or must it escalate; the claims' vectors from
../shared/datasets/scifact-minilm). Per seed, a stratified 25% held-out split (scikit-learn's,
not vdb's hash split, so the figures match route-bench in distribution, not split by split);
held-out macro-F1 of:

- nearest centroid: the cosine of the unit class means (what vdb and semantic-router do);
- pooled Ledoit-Wolf LDA: vdb's method, written with NumPy and
  `sklearn.covariance.ledoit_wolf` on the inputs minus their class means;
- pooled OAS LDA: the same with the Oracle-Approximating Shrinkage estimate;
- scikit-learn LDA: `LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")` with
  equal priors (it shrinks each class's covariance after standardising the features, then
  averages them: a different estimate of the same model);
- a head anchored at the centroids: vdb's softmax head started as `20 · ĉ_c`, fitted by
  L-BFGS to the balanced cross-entropy plus `0.1 · ‖W − 20 · Ĉ‖²` (weight decay toward the
  centroid solution rather than toward zero);
- pooled LDA with its shrinkage chosen by 5-fold cross-validation on the training split
  (0.3 … 0.98; at 1 it is the nearest mean in Euclidean distance);
- cosine centroids in the whitened space: the inputs mapped by `Σ̂^(−1/2)` (pooled
  Ledoit-Wolf) and normalised, then nearest centroid there;
- nearest examples: each class scored by the mean cosine of its 3 most similar training
  inputs (vdb's `NearestExamples`, Sources/Training/NearestExamples.swift).

Run from the project root:

    /work/peer-venv/bin/python Benchmarks/peers/peer_route_lda.py [--seeds 5] [--json]
"""
import argparse
import csv
import gzip
import json
import os
import sys

import numpy as np
from scipy.optimize import minimize
from sklearn.covariance import ledoit_wolf, oas
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit


def docs_examples():
    """The docs set's inputs and best paths (the path whose outcome is good), as texts and
    label indices."""
    best = {}
    with open("tools/route-examples.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row.get("outcome", "good") == "good":
                best[row["input"]] = row["path"]
    texts = list(best)
    paths = sorted(set(best.values()))
    return texts, np.array([paths.index(best[t]) for t in texts])


def docs_set(model):
    """The docs set embedded by sentence-transformers from vdb's model directory."""
    from sentence_transformers import SentenceTransformer

    texts, labels = docs_examples()
    encoder = SentenceTransformer(model, device="cpu")
    vectors = encoder.encode(texts, normalize_embeddings=True)
    return vectors.astype(np.float64), labels


def read_vectors(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    return raw.reshape(-1, raw[0] + 1)[:, 1:].view(dtype)


def scifact_examples(datasets):
    """Claims labelled 0 when the top sentence of dense search is in a relevant abstract
    (the cheap path is good), else 1 (escalate), as route-bench builds them: the claims'
    texts, their rows in ../shared/datasets/scifact-minilm's queries, and the labels."""
    minilm = os.path.join(datasets, "scifact-minilm")
    nearest = read_vectors(os.path.join(minilm, "gt.ivecs"), np.int32)
    with gzip.open(os.path.join(minilm, "base_texts.jsonl.gz"), "rt", encoding="utf-8") as f:
        row_document = [json.loads(line)["doc_id"] for line in f]
    relevant = {}
    for split in ("train", "test"):
        path = os.path.join(datasets, "scifact", "qrels", split + ".tsv")
        with open(path, encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                if int(row["score"]) > 0:
                    relevant.setdefault(row["query-id"], set()).add(row["corpus-id"])
    texts, rows, labels = [], [], []
    with open(os.path.join(minilm, "queries.jsonl"), encoding="utf-8") as f:
        for line in f:
            query = json.loads(line)
            if query["query_id"] not in relevant:
                continue
            texts.append(query["text"])
            rows.append(query["row"])
            good = row_document[nearest[query["row"]][0]] in relevant[query["query_id"]]
            labels.append(0 if good else 1)
    return texts, np.array(rows), np.array(labels)


def scifact_set(datasets):
    """The SciFact set with the claims' stored vectors (unit length)."""
    _, rows, labels = scifact_examples(datasets)
    claims = read_vectors(os.path.join(datasets, "scifact-minilm", "queries.fvecs"), np.float32)
    vectors = claims[rows].astype(np.float64)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), labels


def class_means(x, y, classes):
    return np.stack([x[y == c].mean(axis=0) for c in range(classes)])


def nearest_centroid(x, y, held, classes):
    means = class_means(x, y, classes)
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    return (held @ means.T).argmax(axis=1), None


def lda_predict(means, covariance, held):
    """The most probable class of a Gaussian model with these means, one shared covariance
    and equal priors."""
    weights = np.linalg.solve(covariance, means.T).T
    biases = -0.5 * (weights * means).sum(axis=1)
    return (held @ weights.T + biases).argmax(axis=1)


def pooled_ledoit_wolf(x, y, held, classes, estimator=ledoit_wolf):
    means = class_means(x, y, classes)
    covariance, shrinkage = estimator(x - means[y], assume_centered=True)
    return lda_predict(means, covariance, held), shrinkage


def pooled_oas(x, y, held, classes):
    return pooled_ledoit_wolf(x, y, held, classes, estimator=oas)[0], None


def anchored_head(x, y, held, classes, strength=0.1, scale=20.0):
    means = class_means(x, y, classes)
    anchor = scale * means / np.linalg.norm(means, axis=1, keepdims=True)
    n, d = x.shape
    weight = (n / (classes * np.bincount(y, minlength=classes)))[y]
    onehot = np.eye(classes)[y]

    def loss(theta):
        offset, bias = theta[: classes * d].reshape(classes, d), theta[classes * d :]
        logits = x @ (anchor + offset).T + bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        value = -(weight * np.log(p[np.arange(n), y])).sum() / weight.sum()
        delta = weight[:, None] * (p - onehot) / weight.sum()
        gradient = np.concatenate([(delta.T @ x + 2 * strength * offset).ravel(), delta.sum(0)])
        return value + strength * (offset**2).sum(), gradient

    theta = minimize(loss, np.zeros(classes * d + classes), jac=True, method="L-BFGS-B").x
    weights = anchor + theta[: classes * d].reshape(classes, d)
    return (held @ weights.T + theta[classes * d :]).argmax(axis=1), None


def shrunk_lda(x, y, held, classes, shrinkage):
    means = class_means(x, y, classes)
    residuals = x - means[y]
    within = residuals.T @ residuals / len(x)
    mu = np.trace(within) / len(within)
    covariance = (1 - shrinkage) * within + shrinkage * mu * np.eye(len(within))
    return lda_predict(means, covariance, held)


def lda_shrinkage_by_cv(x, y, held, classes, grid=(0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)):
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(x, y))

    def score(shrinkage):
        return np.mean([
            f1_score(y[b], shrunk_lda(x[a], y[a], x[b], classes, shrinkage), average="macro")
            for a, b in folds])
    return shrunk_lda(x, y, held, classes, max(grid, key=score)), None


def whitened_centroids(x, y, held, classes):
    means = class_means(x, y, classes)
    covariance, _ = ledoit_wolf(x - means[y], assume_centered=True)
    values, vectors = np.linalg.eigh(covariance)
    whiten = vectors / np.sqrt(values)

    def unit(v):
        return v / np.linalg.norm(v, axis=1, keepdims=True)
    return nearest_centroid(unit(x @ whiten), y, unit(held @ whiten), classes)


def nearest_examples(x, y, held, classes, k=3):
    cosines = held @ x.T
    scores = [np.sort(cosines[:, y == c], axis=1)[:, ::-1][:, :k].mean(axis=1) for c in range(classes)]
    return np.stack(scores, axis=1).argmax(axis=1), None


def sklearn_lda(x, y, held, classes):
    lda = LinearDiscriminantAnalysis(
        solver="lsqr", shrinkage="auto", priors=np.full(classes, 1 / classes))
    return lda.fit(x, y).predict(held), None


METHODS = {
    "nearest_centroid": nearest_centroid,
    "pooled_ledoit_wolf_lda": pooled_ledoit_wolf,
    "pooled_oas_lda": pooled_oas,
    "sklearn_lda_auto": sklearn_lda,
    "head_anchored_at_centroids": anchored_head,
    "lda_shrinkage_by_cv": lda_shrinkage_by_cv,
    "whitened_centroids": whitened_centroids,
    "nearest_examples": nearest_examples,
}


def evaluate(x, y, seeds):
    classes = int(y.max()) + 1
    scores = {name: [] for name in METHODS}
    shrinkages = []
    for seed in range(1, seeds + 1):
        split = StratifiedShuffleSplit(n_splits=1, test_size=0.25, random_state=seed)
        train, held = next(split.split(x, y))
        for name, method in METHODS.items():
            predicted, shrinkage = method(x[train], y[train], x[held], classes)
            scores[name].append(f1_score(y[held], predicted, average="macro"))
            if shrinkage is not None:
                shrinkages.append(shrinkage)
    summary = {
        name: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)), "values": v}
        for name, v in scores.items()
    }
    summary["shrinkage"] = float(np.mean(shrinkages))
    summary["train_examples"] = int(len(train))
    summary["heldout_examples"] = int(len(held))
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--model", default=os.path.expanduser("~/.cache/vdb/models/all-MiniLM-L6-v2"))
    parser.add_argument("--datasets", default="../shared/datasets")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print("embedding the docs set", file=sys.stderr)
    sets = {"docs": docs_set(args.model), "scifact": scifact_set(args.datasets)}
    result = {"seeds": args.seeds, "sets": {}}
    import sklearn

    result["sklearn"] = sklearn.__version__
    for name, (x, y) in sets.items():
        result["sets"][name] = evaluate(x, y, args.seeds)
    if args.json:
        print(json.dumps(result))
        return
    print(f"held-out macro-F1, {args.seeds} stratified 25% splits (mean ± sd), scikit-learn {sklearn.__version__}")
    for name, summary in result["sets"].items():
        print(f"\n{name} set: {summary['train_examples']} train / {summary['heldout_examples']} held out")
        for method in METHODS:
            s = summary[method]
            wins = sum(a > b for a, b in zip(s["values"], summary["nearest_centroid"]["values"]))
            losses = sum(a < b for a, b in zip(s["values"], summary["nearest_centroid"]["values"]))
            print(f"  {method:<27} {s['mean']:.3f} ± {s['sd']:.3f}  (against the centroids: {wins} ahead, {losses} behind)")
        print(f"  Ledoit-Wolf shrinkage       {summary['shrinkage']:.3f} (mean)")


if __name__ == "__main__":
    main()
