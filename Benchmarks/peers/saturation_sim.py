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
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from precision_sim import load_model, quantize_blocks, reference_texts  # noqa: E402


def main():
    clamp = "--no-clamp" not in sys.argv
    torch.set_num_threads(1)
    golden, passages = reference_texts(passages=12)
    model = load_model()
    base = [model.encode(texts, normalize_embeddings=True) for texts in (golden, passages)]
    counts = {"pairs": 0, "saturated": 0}

    def integer_forward(layer, name):
        qw, sw, _ = quantize_blocks(layer.weight.data.double(), 8, 32)  # columns × blocks × 32
        unsigned = "attention.self" not in name

        def forward(x):
            rows = x.reshape(-1, x.shape[-1]).double()
            if not unsigned:
                qx, sx, _ = quantize_blocks(rows, 16, 32)
                y = torch.einsum("tgi,cgi,tg,cg->tc", qx, qw, sx[..., 0], sw[..., 0])
            else:
                u, sx, zero = quantize_blocks(rows, 8, 32, asymmetric=True)  # rows × blocks × 32
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
