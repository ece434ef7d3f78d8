#!/usr/bin/env python3
"""Which low precision keeps all-MiniLM-L6-v2's sentence vectors at cosine ≥ 0.999?

Simulates, in PyTorch, the number formats a CPU encoder could compute its linear layers
in (q, k, v, attention output, FFN in and out; attention scores, softmax, LayerNorm and
GELU stay float32), and prints the min and mean cosine to float32's vectors on the 22
golden texts (../shared/reference) and on the first 300 SciFact passages:

- int8 weights, symmetric per output channel, activations float32 / int16 / int8
  (symmetric per token row, or asymmetric u8 per row as for `vpmaddubsw`/VNNI),
- int8 with the FFN down-projection kept in float32,
- bfloat16 weights and activations (round to nearest even), float32 sums,
- int8 weights with one scale per block of 32 (or 16) inputs, activations float32 or
  symmetric integers of 7, 8 or 16 bits per block (llama.cpp's Q8_0 layout) or int16 per
  row: the last, int16 activations per row, is vdb's `int8` precision
  (Sources/CKernels/int8.c); weights per block of 64 with them;
- the same weights with unsigned (asymmetric) 8- or 7-bit activations per block, in every
  layer or only in the FFN (and attention output) with int16 elsewhere: what AVX2's
  `vpmaddubsw` could multiply;
- "rotated": each layer's input multiplied by an orthogonal R (random signs, then
  Walsh-Hadamard blocks of 128) and its weights by Rᵀ before both are quantized (as
  QuaRot does), which spreads the activations' outliers: int8 or 7-bit weights per block
  with 8-bit activations per row or per block (the latter is vdb's `w8a8`,
  Sources/CKernels/w8a8.c), per block of 16, or with one kind of layer at int16; int8
  weights with 7-bit activations.

`--only TEXT` runs only the configurations whose label contains TEXT.

    /work/peer-venv/bin/python Benchmarks/peers/precision_sim.py
"""
import itertools
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

REFERENCE = "../shared/reference/minilm_reference_embeddings.json"
CORPUS = "../shared/datasets/scifact/corpus.jsonl"


def quantize_blocks(x, bits, size=None, asymmetric=False):
    """Integers of `bits` bits per block of `size` along the last dimension (None: the
    whole row), one float32 scale per block (llama.cpp's Q8_0 layout), as
    `(integers, scales, zero points)` shaped `[..., blocks, size]`. Symmetric (zero
    point 0, −(2^(bits−1) − 1) … 2^(bits−1) − 1), or asymmetric (0 … 2^bits − 1 from the
    block's minimum to its maximum), as unsigned inputs to `vpmaddubsw` would be."""
    size = size or x.shape[-1]
    b = x.reshape(*x.shape[:-1], x.shape[-1] // size, size)
    if asymmetric:
        low, high = b.amin(-1, keepdim=True), b.amax(-1, keepdim=True)
        scale = ((high - low) / (2**bits - 1)).clamp_min(1e-12)
        zero = torch.round(-low / scale)
        return (torch.round(b / scale) + zero).clamp(0, 2**bits - 1), scale, zero
    top = 2 ** (bits - 1) - 1
    scale = b.abs().amax(-1, keepdim=True).clamp_min(1e-12) / top
    return torch.round(b / scale).clamp(-top, top), scale, torch.zeros_like(scale)


def hadamard(n):
    """The n × n Walsh-Hadamard matrix, orthonormal (n a power of two)."""
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h / n**0.5


def rotation(d, block=128):
    """An orthogonal d × d matrix: random signs (seeded by d), then a Hadamard matrix on
    each block of `block` inputs."""
    signs = torch.randint(0, 2, (d,), generator=torch.Generator().manual_seed(d)) * 2.0 - 1
    return torch.block_diag(*[hadamard(block)] * (d // block)) * signs


def reference_texts(passages=300):
    """The 22 golden texts and the first `passages` SciFact passages (title and text)."""
    golden = [item["text"] for item in json.load(open(REFERENCE))["items"]]
    with open(CORPUS) as f:
        scifact = [(d.get("title", "") + " " + d["text"]).strip()
                   for d in map(json.loads, itertools.islice(f, passages))]
    return golden, scifact


def load_model():
    model_dir = os.environ.get("VDB_MODEL_DIR") or os.path.expanduser("~/.cache/vdb/models/all-MiniLM-L6-v2")
    return SentenceTransformer(model_dir, device="cpu")


def main():
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    torch.set_num_threads(1)
    golden, passages = reference_texts()
    model = load_model()
    base = [model.encode(texts, normalize_embeddings=True) for texts in (golden, passages)]
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    original = {m: m.weight.data.clone() for _, m in linears}

    def blocks(bits, size=None, asymmetric=False):
        """Quantize to `quantize_blocks`' integers and back: what a kernel computing with
        them sees."""
        def quantize(x):
            q, scale, zero = quantize_blocks(x, bits, size, asymmetric)
            return ((q - zero) * scale).reshape(x.shape)
        return quantize

    def bfloat16(x):
        return x.to(torch.bfloat16).to(torch.float32)

    def ffn_down(name):
        return name.endswith("output.dense") and "attention" not in name

    def run(label, weights, activations, keep_float32=(), where=None, elsewhere=None,
            rotated=False):
        """`activations` quantizes the inputs of every linear layer, or, given `where` (a
        test of the layer's name), of those layers only and `elsewhere` of the rest;
        `rotated` quantizes x·Rᵀ and W·Rᵀ instead of x and W."""
        if only and only not in label:
            return
        hooks = []
        for name, m in linears:
            m.weight.data = original[m].clone()
            if any(part in name for part in keep_float32):
                continue
            quantize = activations if where is None or where(name) else elsewhere
            if rotated:
                r = rotation(m.in_features)
                m.weight.data = weights(original[m] @ r.T) @ r
                quantize = quantize and (lambda x, q=quantize, r=r: q(x @ r.T) @ r)
            else:
                m.weight.data = weights(original[m])
            if quantize:
                hooks.append(m.register_forward_pre_hook(lambda _, args, q=quantize: (q(args[0]),)))
        vectors = [model.encode(texts, normalize_embeddings=True) for texts in (golden, passages)]
        for hook in hooks:
            hook.remove()
        for _, m in linears:
            m.weight.data = original[m].clone()
        cosines = [(v * b).sum(1) for v, b in zip(vectors, base)]
        print(f"{label:44s} golden min {cosines[0].min():.5f} mean {cosines[0].mean():.5f}"
              f"   SciFact min {cosines[1].min():.5f} mean {cosines[1].mean():.5f}", flush=True)

    int8_weights = blocks(8)  # one scale per output channel
    run("int8 weights, float32 activations", int8_weights, None)
    run("int8 weights, int16 activations (per row)", int8_weights, blocks(16))
    run("int8 weights, int8 activations (per row)", int8_weights, blocks(8))
    run("int8 weights, u8 activations (per row)", int8_weights, blocks(8, asymmetric=True))
    run("int8, FFN down-projection in float32", int8_weights, blocks(8), ("output.dense",))
    run("bfloat16 weights and activations", bfloat16, bfloat16)
    run("int8 weights per block of 32, float32 activations", blocks(8, 32), None)
    run("int8 blocks of 32, int7 activations (blocks of 32)", blocks(8, 32), blocks(7, 32))
    run("int8 blocks of 32, int8 activations (blocks of 32)", blocks(8, 32), blocks(8, 32))
    run("int8 blocks of 16, int8 activations (blocks of 16)", blocks(8, 16), blocks(8, 16))
    run("int8 blocks of 32, int16 activations (blocks of 32)", blocks(8, 32), blocks(16, 32))
    run("int8 blocks of 32, int16 activations (per row)", blocks(8, 32), blocks(16))
    run("int8 blocks of 64, int16 activations (per row)", blocks(8, 64), blocks(16))
    # What AVX2's `vpmaddubsw` (u8 × s8, pairs summed to int16) could take: unsigned
    # activations per block, in some layers only (int16 elsewhere). 8 bits can saturate the
    # pair sums (2 · 255 · 127 > 32767); 7 bits cannot.
    q16 = blocks(16, 32)
    run("int8 blocks of 32, u8 activations (blocks of 32)", blocks(8, 32), blocks(8, 32, True))
    run("int8 blocks of 32, u8 activations, FFN and attn out", blocks(8, 32), blocks(8, 32, True),
        where=lambda name: "attention.self" not in name, elsewhere=q16)
    run("int8 blocks of 32, u7 activations (blocks of 32)", blocks(8, 32), blocks(7, 32, True))
    run("int8 blocks of 32, u7 activations, FFN", blocks(8, 32), blocks(7, 32, True),
        where=lambda name: "intermediate" in name or ffn_down(name), elsewhere=q16)
    run("int8 blocks of 32, u7 activations, FFN down", blocks(8, 32), blocks(7, 32, True),
        where=ffn_down, elsewhere=q16)
    # Rotated: 8-bit activations become precise enough; 7-bit weights (which adding
    # `vpmaddubsw`'s pair sums in int16 would need) do not.
    run("int8 blocks of 32, int8 activations per row", blocks(8, 32), blocks(8))
    run("rotated, int8 blocks of 32, int8 activations per row", blocks(8, 32), blocks(8),
        rotated=True)
    run("rotated, int8 blocks of 32, int8 activations (blocks of 32)", blocks(8, 32),
        blocks(8, 32), rotated=True)
    run("rotated, int7 blocks of 32, int8 activations per row", blocks(7, 32), blocks(8),
        rotated=True)
    run("rotated, int7 blocks of 16, int8 activations per row", blocks(7, 16), blocks(8),
        rotated=True)
    run("rotated, int7 blocks of 32, int8 activations (blocks of 32)", blocks(7, 32),
        blocks(8, 32), rotated=True)
    # 7-bit activations have the bound 7-bit weights have (4 · 63 · 127 < 32768): what
    # adding pairs of `vpmaddubsw` sums in int16 would need on AVX2.
    run("rotated, int8 blocks of 32, int7 activations (blocks of 32)", blocks(8, 32),
        blocks(7, 32), rotated=True)
    run("rotated, int8 blocks of 32, int7 activations (blocks of 16)", blocks(8, 32),
        blocks(7, 16), rotated=True)
    # Where the rotated 8-bit activations (vdb's `w8a8`) still lose: smaller blocks, or one
    # kind of layer at int16 (none measurably closer: the int8 weights dominate by then).
    run("rotated, int8 blocks of 32, int8 activations (blocks of 16)", blocks(8, 32),
        blocks(8, 16), rotated=True)
    for kind, test in [
        ("qkv", lambda name: "attention.self" in name),
        ("attn out", lambda name: name.endswith("attention.output.dense")),
        ("FFN up", lambda name: "intermediate" in name),
        ("FFN down", ffn_down),
    ]:
        run(f"rotated, int8 blocks of 32, a8 but {kind} int16", blocks(8, 32), blocks(8, 32),
            where=lambda name, test=test: not test(name), elsewhere=q16, rotated=True)


if __name__ == "__main__":
    main()
