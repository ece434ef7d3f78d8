#!/usr/bin/env python3
"""Would AVX2's `vpmaddubsw` keep all-MiniLM-L6-v2's vectors? Its integer arithmetic, exactly.

`vpmaddubsw` multiplies unsigned bytes by signed ones and adds each adjacent pair of
products into a *saturating* int16. With activations quantized asymmetrically per block
of 32 inputs (u8 with a zero point) and vdb's int8 weights per block of 32, a pair sum can
exceed 32,767. `precision_sim.py` rounds the values but cannot see that; here every
linear layer but q, k, v (which stay int16 × int8, as vdb's `int8` computes them) sums
its integer pairs, clamps them as the instruction does, subtracts the zero point's share
and scales per block. Prints the min and mean cosine to float32's vectors on the 22 golden
texts and 12 SciFact passages, and the share of pairs that saturated. `--no-clamp` is the
control (the same code without the clamp). Slow (minutes): the pairs are materialized.

    /work/peer-venv/bin/python Benchmarks/peers/saturation_sim.py [--no-clamp]
"""
import itertools
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402


def quantize_blocks(x, bits, asymmetric):
    """Integers per block of 32 along the last dimension, their scales and zero points."""
    b = x.reshape(*x.shape[:-1], x.shape[-1] // 32, 32)
    if asymmetric:
        low, high = b.amin(-1, keepdim=True), b.amax(-1, keepdim=True)
        scale = ((high - low) / (2**bits - 1)).clamp_min(1e-12)
        zero = torch.round(-low / scale)
        return (torch.round(b / scale) + zero).clamp(0, 2**bits - 1), scale, zero
    top = 2 ** (bits - 1) - 1
    scale = b.abs().amax(-1, keepdim=True).clamp_min(1e-12) / top
    return torch.round(b / scale).clamp(-top, top), scale, torch.zeros_like(scale)


def main():
    clamp = "--no-clamp" not in sys.argv
    torch.set_num_threads(1)
    golden = [item["text"] for item in json.load(open("../shared/reference/minilm_reference_embeddings.json"))["items"]]
    with open("../shared/datasets/scifact/corpus.jsonl") as f:
        passages = [(d.get("title", "") + " " + d["text"]).strip() for d in map(json.loads, itertools.islice(f, 12))]
    model_dir = os.environ.get("VDB_MODEL_DIR") or os.path.expanduser("~/.cache/vdb/models/all-MiniLM-L6-v2")
    model = SentenceTransformer(model_dir, device="cpu")
    base = [model.encode(texts, normalize_embeddings=True) for texts in (golden, passages)]
    counts = {"pairs": 0, "saturated": 0}

    def integer_forward(layer, name):
        qw, sw, _ = quantize_blocks(layer.weight.data.double(), 8, False)  # columns × blocks × 32
        unsigned = "attention.self" not in name

        def forward(x):
            rows = x.reshape(-1, x.shape[-1]).double()
            if not unsigned:
                qx, sx, _ = quantize_blocks(rows, 16, False)
                y = torch.einsum("tgi,cgi,tg,cg->tc", qx, qw, sx[..., 0], sw[..., 0])
            else:
                u, sx, zero = quantize_blocks(rows, 8, True)  # rows × blocks × 32
                pairs = torch.einsum("tgpi,cgpi->tcgp", u.reshape(*u.shape[:2], 16, 2),
                                     qw.reshape(*qw.shape[:2], 16, 2))
                counts["pairs"] += pairs.numel()
                counts["saturated"] += int(((pairs > 32767) | (pairs < -32768)).sum())
                if clamp:
                    pairs = pairs.clamp(-32768, 32767)
                dots = pairs.sum(-1) - zero[..., 0][:, None, :] * qw.sum(-1)[None]
                y = (dots * sx[..., 0][:, None, :] * sw[..., 0][None]).sum(-1)
            return (y + layer.bias.data.double()).reshape(*x.shape[:-1], -1).float()
        return forward

    for name, layer in model.named_modules():
        if isinstance(layer, torch.nn.Linear):
            layer.forward = integer_forward(layer, name)
    vectors = [model.encode(texts, normalize_embeddings=True, batch_size=1) for texts in (golden, passages)]
    cosines = [(v * b).sum(1) for v, b in zip(vectors, base)]
    print(f"u8 activations (all but q, k, v), pair sums {'clamped' if clamp else 'not clamped'}:"
          f" golden min {cosines[0].min():.5f} mean {cosines[0].mean():.5f}"
          f"   SciFact min {cosines[1].min():.5f} mean {cosines[1].mean():.5f}"
          f"   saturated pairs {counts['saturated'] / counts['pairs']:.2%}")


if __name__ == "__main__":
    main()
