#!/usr/bin/env python3
"""Builds the dequantization fixtures of Tests/SparrowKernelsTests/Fixtures.

Reference: gguf-py's numpy dequantizers (`gguf.quants.dequantize`, PyPI package `gguf`),
which compute in float32 with the same operation order as ggml's `dequantize_row_*`.

For every supported type the script writes a few blocks of random bytes (f16 scale fields
replaced by finite random f16 values, including a zero, a negative and a subnormal scale),
plus real rows from the local GGUF models when present. Each case is two files:

    <name>.src  the raw row bytes as stored in a GGUF file
    <name>.f32  the expected little-endian float32 values

and one line in `manifest.tsv`: name, direction, ggml type name, value count, source.
Direction `dequant` cases expect `.f32` from `.src`; direction `quant` cases go the other way
(f32 input in `.f32`, expected Q8_0/F16/BF16 bytes from gguf-py's quantizers in `.src`;
gguf-py's Q8_0 quantizer is documented bit-exact with ggml's `quantize_row_q8_0_ref`).

Usage: python3 scripts/make_quant_fixtures.py [--models /work/models] [--out DIR]
Deterministic (fixed seed); re-running rewrites identical files.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "Tests", "SparrowKernelsTests", "Fixtures")

# Byte offsets of the f16 scale fields in each block (ggml-common.h block_* structs).
HALF_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
RANDOM_BLOCKS = {T.Q4_0: 7, T.Q4_1: 7, T.Q5_0: 7, T.Q5_1: 7, T.Q8_0: 7,
                 T.Q2_K: 3, T.Q3_K: 3, T.Q4_K: 3, T.Q5_K: 3, T.Q6_K: 3}

# (model file, tensor name, row indices) — real rows, as a model would be read.
REAL_ROWS = [
    ("qwen2.5-coder-0.5b-instruct.gguf", "blk.0.attn_v.weight", [0, 77]),           # Q8_0, 896
    ("qwen2.5-coder-0.5b-instruct.gguf", "token_embd.weight", [151, 151935]),      # Q5_0, 896
    ("qwen2.5-coder-0.5b-instruct.gguf", "blk.11.ffn_down.weight", [0]),           # Q4_K, 4864
    ("qwen2.5-coder-0.5b-instruct.gguf", "blk.0.ffn_down.weight", [5]),            # Q6_K, 4864
    ("qwen2.5-coder-0.5b-instruct.gguf", "blk.0.attn_norm.weight", [0]),           # F32, 896
    ("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "blk.0.ffn_gate.weight", [3, 4000]),  # Q4_K, 1536
    ("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "output.weight", [1000]),            # Q6_K, 1536
    ("SmolLM2-135M-Instruct.Q4_1.gguf", "blk.0.ffn_down.weight", [2]),             # Q4_1, 1536
    ("SmolLM2-135M-Instruct.Q4_1.gguf", "blk.0.ffn_gate.weight", [10]),            # Q4_1, 576
]


def random_scales(rng: np.random.Generator, n: int) -> np.ndarray:
    """n finite f16 scales: mostly ~1e-3..1e-1 of either sign, with a zero, a subnormal
    and a largish one mixed in so edge conversions are exercised."""
    v = rng.normal(0, 0.02, n).astype(np.float16)
    specials = np.array([0.0, 3.0e-6, -4.5e-7, 1.5], dtype=np.float16)  # 3e-6, -4.5e-7: subnormal
    k = min(n // 4, len(specials))
    idx = rng.choice(n, size=k, replace=False)
    v[idx] = specials[:k]
    assert np.all(np.isfinite(v))
    return v


def random_case(rng: np.random.Generator, qtype: T) -> tuple[np.ndarray, int]:
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    nb = RANDOM_BLOCKS[qtype]
    raw = rng.integers(0, 256, size=(nb, type_size), dtype=np.uint8)
    for off in HALF_FIELDS[qtype]:
        raw[:, off:off + 2] = random_scales(rng, nb).view(np.uint8).reshape(nb, 2)
    return raw, nb * block_size


def f16_case(rng: np.random.Generator) -> np.ndarray:
    bits = rng.integers(0, 1 << 16, size=480, dtype=np.uint16)
    bits = bits[(bits & 0x7C00) != 0x7C00]  # drop inf/NaN from the random part
    specials = np.array([0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF,
                         0x7C00, 0xFC00, 0x3C00, 0x3555, 0x0200, 0x83FF], dtype=np.uint16)
    return np.concatenate([specials, bits]).view(np.uint8)


def bf16_case(rng: np.random.Generator) -> np.ndarray:
    bits = rng.integers(0, 1 << 16, size=500, dtype=np.uint16)
    specials = np.array([0x0000, 0x8000, 0x0001, 0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0x3F80], dtype=np.uint16)
    return np.concatenate([specials, bits]).view(np.uint8)


def write_case(out: str, manifest: list, name: str, qtype: T, raw: np.ndarray, count: int, source: str) -> None:
    raw = np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1)
    expected = gguf.quants.dequantize(raw, qtype).astype(np.float32, copy=False).reshape(-1)
    assert expected.size == count, (name, expected.size, count)
    with open(os.path.join(out, name + ".src"), "wb") as f:
        f.write(raw.tobytes())
    with open(os.path.join(out, name + ".f32"), "wb") as f:
        f.write(expected.astype("<f4").tobytes())
    manifest.append(f"{name}\tdequant\t{qtype.name}\t{count}\t{source}")


def write_quant_case(out: str, manifest: list, name: str, qtype: T, x: np.ndarray, source: str) -> None:
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    with np.errstate(over="ignore"):  # the 3e4-scaled block overflows f16 on purpose
        q = gguf.quants.quantize(x if qtype == T.BF16 else x.reshape(1, -1), qtype)
    with open(os.path.join(out, name + ".src"), "wb") as f:
        f.write(np.ascontiguousarray(q).view(np.uint8).tobytes())
    with open(os.path.join(out, name + ".f32"), "wb") as f:
        f.write(x.astype("<f4").tobytes())
    manifest.append(f"{name}\tquant\t{qtype.name}\t{x.size}\t{source}")


def activation_input(rng: np.random.Generator) -> np.ndarray:
    """Activations for the quantizer fixtures: normal values, a block with amax exactly 127
    (d = 1, so x.5 values are exact rounding ties), a zero block, tiny and huge blocks."""
    x = rng.normal(0, 1, 32 * 12).astype(np.float32)
    ties = np.array([0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 126.5, -126.5], dtype=np.float32)
    x[32:64] = rng.integers(-127, 128, 32).astype(np.float32)
    x[32:40] = ties
    x[40] = 127.0
    x[64:96] = 0.0
    x[96:128] *= 1e-30
    x[128:160] *= 3e4
    x[160:192] = np.round(x[160:192] * 8) / 8
    return x


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="/work/models")
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for f in os.listdir(args.out):
        if f.endswith((".src", ".f32")) or f == "manifest.tsv":
            os.remove(os.path.join(args.out, f))

    rng = np.random.default_rng(20250611)
    manifest: list[str] = []

    write_case(args.out, manifest, "random_f32", T.F32, rng.normal(0, 1, 67).astype("<f4").view(np.uint8), 67, "random")
    f16 = f16_case(rng)
    write_case(args.out, manifest, "random_f16", T.F16, f16, f16.size // 2, "random bits + specials, no NaN")
    bf16 = bf16_case(rng)
    write_case(args.out, manifest, "random_bf16", T.BF16, bf16, bf16.size // 2, "random bits + specials, NaN included")
    for qtype in RANDOM_BLOCKS:
        raw, count = random_case(rng, qtype)
        write_case(args.out, manifest, f"random_{qtype.name.lower()}", qtype, raw, count, "random blocks, finite f16 scales")

    acts = activation_input(rng)
    write_quant_case(args.out, manifest, "quant_q8_0", T.Q8_0, acts, "gguf Q8_0.quantize (= quantize_row_q8_0_ref)")
    write_quant_case(args.out, manifest, "quant_bf16", T.BF16, acts, "gguf BF16.quantize (= ggml_compute_fp32_to_bf16)")
    write_quant_case(args.out, manifest, "quant_f16", T.F16, acts, "numpy float16 cast (round to nearest even)")

    for model, tensor_name, rows in REAL_ROWS:
        path = os.path.join(args.models, model)
        if not os.path.exists(path):
            print(f"skipping {model}: not found", file=sys.stderr)
            continue
        reader = gguf.GGUFReader(path)
        tensor = next(t for t in reader.tensors if t.name == tensor_name)
        qtype = T(tensor.tensor_type)
        cols = int(tensor.shape[0])
        data = np.asarray(tensor.data)
        data = data.reshape(-1, data.shape[-1]) if data.ndim > 1 else data.reshape(1, -1)
        for r in rows:
            raw = data[r].view(np.uint8)
            short = model.split("-instruct")[0].replace(".", "_").replace("-", "_").lower()
            name = f"{short}_{tensor_name.replace('.', '_')}_r{r}"
            write_case(args.out, manifest, name, qtype, raw, cols, f"{model}:{tensor_name}[{r}]")

    with open(os.path.join(args.out, "manifest.tsv"), "w") as f:
        f.write("# name\tdirection\ttype\tcount\tsource (generated by scripts/make_quant_fixtures.py)\n")
        f.write("\n".join(manifest) + "\n")
    total = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"{len(manifest)} cases, {total} bytes in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
