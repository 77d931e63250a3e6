#!/usr/bin/env python3
"""Re-cuts a dense qwen2 GGUF (Qwen2.5-Coder-0.5B) into a qwen2moe GGUF that computes the same
function, so a sparse forward pass can be checked against the dense model on real weights.

    python3 scripts/moe_recut.py DENSE.gguf OUT.gguf [--experts 4] [--check-llama-cpp]

How the dense SwiGLU FFN  down · (silu(gate·x) ⊙ up·x)  becomes E experts, exactly:
  * The intermediate dimension (n_ff rows of gate/up, n_ff columns of down) is padded with
    zeros to a multiple of E · 256 and split into E equal slices; expert e gets rows
    [e·F, (e+1)·F) of gate and up and the same columns of down. Padded rows give
    silu(0)·0 = 0 and meet zero columns of down, so they add exactly 0.
  * Slicing gate/up is row slicing: the quantized rows are copied byte for byte. Slicing down
    cuts its rows between quantization blocks; F is a multiple of 256 (the K-quant super-block,
    and a multiple of every other block size), so every block stays whole and the activation
    blocks (Q8_K, 256 values) are the same as in the dense product.
  * The router `ffn_gate_inp` is all zeros, so every token's router logits are 0, the softmax
    gives each expert exactly 1/E (E a power of two), and top-k = E uses them all. qwen2moe
    does not renormalise. To cancel the 1/E, each expert's down projection is multiplied by E
    in its blocks' f16 scales (`d`, and `dmin` for K-quants with a minimum): multiplying by a
    power of two is exact in floating point, so every dequantized down weight is exactly E
    times the dense one.
  * qwen2moe requires a shared expert; it gets width 256, zero gate/up/down (Q8_0 with d = 0)
    and a non-zero gate vector (llama.cpp computes sigmoid as silu(g)/g, which is 0/0 at g = 0),
    so it runs but adds exactly 0.
The result differs from the dense model only in the order the down-projection partial sums are
added (per expert, then across experts), i.e. in the last bits of the logits.

With --check-llama-cpp the script also runs both files greedily in llama-cpp-python and reports
whether the tokens agree.
"""

import argparse
import sys

import numpy as np

import gguf
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

SUPER_BLOCK = 256
# Byte offsets of the f16 scales to multiply by E within one block: ggml-common.h layouts.
SCALE_OFFSETS = {
    Q.Q8_0: [0], Q.Q4_0: [0], Q.Q5_0: [0],              # d
    Q.Q4_1: [0, 2], Q.Q5_1: [0, 2],                      # d, m  (m is the block minimum: scales too)
    Q.Q2_K: [80, 82], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2],    # d, dmin
    Q.Q3_K: [108], Q.Q6_K: [208],                        # d
    Q.F32: None, Q.F16: None,
}


def copy_metadata(reader: gguf.GGUFReader, writer: gguf.GGUFWriter, rename):
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.name"):
            continue
        vtype = field.types[0]
        value = field.contents()
        if vtype == V.ARRAY:
            writer.add_key_value(rename(key), value, vtype, sub_type=field.types[-1])
        else:
            writer.add_key_value(rename(key), value, vtype)


def scale_blocks(raw: np.ndarray, qtype, factor: float) -> np.ndarray:
    """raw: [..., bytes] uint8 rows of whole blocks; returns a copy with every block's scales × factor."""
    out = raw.copy()
    if qtype in (Q.F32, Q.F16):
        dt = np.float32 if qtype == Q.F32 else np.float16
        vals = out.view(dt) * dt(factor)
        return vals.view(np.uint8)
    offsets = SCALE_OFFSETS.get(qtype)
    if offsets is None:
        sys.exit(f"down projection type {qtype.name} is not supported by the re-cut")
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = out.reshape(-1, type_size)
    for off in offsets:
        h = blocks[:, off:off + 2].copy().view(np.float16)
        scaled = h * np.float16(factor)
        if not np.all(np.isfinite(scaled)):
            sys.exit("scaling the down projection overflowed f16")
        blocks[:, off:off + 2] = scaled.view(np.uint8)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dense")
    ap.add_argument("out")
    ap.add_argument("--experts", type=int, default=4, help="E, a power of two (default 4)")
    ap.add_argument("--check-llama-cpp", action="store_true")
    args = ap.parse_args()
    E = args.experts
    if E < 1 or E & (E - 1):
        sys.exit("--experts must be a power of two so 1/E and ×E are exact")

    r = gguf.GGUFReader(args.dense)
    arch = r.fields["general.architecture"].contents()
    if arch != "qwen2":
        sys.exit(f"expected a qwen2 GGUF, found {arch}")
    tensors = {t.name: t for t in r.tensors}
    n_embd = int(r.fields["qwen2.embedding_length"].contents())
    n_ff = int(r.fields["qwen2.feed_forward_length"].contents())
    n_layer = int(r.fields["qwen2.block_count"].contents())
    unit = E * SUPER_BLOCK
    n_ff_padded = (n_ff + unit - 1) // unit * unit
    F = n_ff_padded // E
    shared_ff = SUPER_BLOCK

    w = gguf.GGUFWriter(args.out, "qwen2moe")
    copy_metadata(r, w, lambda k: "qwen2moe." + k[len("qwen2."):] if k.startswith("qwen2.") else k)
    w.add_expert_count(E)
    w.add_expert_used_count(E)
    w.add_expert_feed_forward_length(F)
    w.add_expert_shared_feed_forward_length(shared_ff)
    w.add_string("general.name", f"{r.fields['general.name'].contents() if 'general.name' in r.fields else 'dense'} re-cut into {E} experts")

    def raw(t):
        return np.asarray(t.data).view(np.uint8).reshape(int(t.shape[1]), -1)  # [rows, rowBytes]

    def zero_q8_0(rows, cols):
        _, type_size = gguf.GGML_QUANT_SIZES[Q.Q8_0]
        return np.zeros((rows, cols // 32 * type_size), dtype=np.uint8)

    rng = np.random.default_rng(0)
    for t in r.tensors:
        name = t.name
        if ".ffn_gate." in name or ".ffn_up." in name or ".ffn_down." in name:
            continue
        w.add_tensor(name, np.asarray(t.data), raw_dtype=None if t.tensor_type in (Q.F32, Q.F16) else t.tensor_type)
    for i in range(n_layer):
        p = f"blk.{i}."
        gate, up, down = tensors[p + "ffn_gate.weight"], tensors[p + "ffn_up.weight"], tensors[p + "ffn_down.weight"]
        for name, t in ((p + "ffn_gate_exps.weight", gate), (p + "ffn_up_exps.weight", up)):
            rows = raw(t)                                               # [n_ff, rowBytes]
            padded = np.zeros((n_ff_padded, rows.shape[1]), np.uint8)   # zero blocks: d = 0 → 0
            padded[:n_ff] = rows
            w.add_tensor(name, padded.reshape(E, F, -1), raw_dtype=t.tensor_type)  # ne [n_embd, F, E]
        rows = raw(down)                                                # [n_embd, n_ff/bs · typeSize]
        bs, ts = gguf.GGML_QUANT_SIZES[down.tensor_type]
        if F % bs or n_ff % bs:
            sys.exit(f"{down.tensor_type.name} block size {bs} does not divide the slices")
        padded = np.zeros((n_embd, n_ff_padded // bs * ts), np.uint8)
        padded[:, : rows.shape[1]] = rows
        per_expert = F // bs * ts
        experts = np.stack([padded[:, e * per_expert:(e + 1) * per_expert] for e in range(E)])  # [E, n_embd, F bytes]
        experts = scale_blocks(experts, down.tensor_type, float(E))
        w.add_tensor(p + "ffn_down_exps.weight", experts, raw_dtype=down.tensor_type)  # ne [F, n_embd, E]
        w.add_tensor(p + "ffn_gate_inp.weight", np.zeros((E, n_embd), np.float32))   # ne [n_embd, E]
        w.add_tensor(p + "ffn_gate_inp_shexp.weight", rng.uniform(0.5, 1.0, n_embd).astype(np.float32))
        w.add_tensor(p + "ffn_gate_shexp.weight", zero_q8_0(shared_ff, n_embd), raw_dtype=Q.Q8_0)
        w.add_tensor(p + "ffn_up_shexp.weight", zero_q8_0(shared_ff, n_embd), raw_dtype=Q.Q8_0)
        w.add_tensor(p + "ffn_down_shexp.weight", zero_q8_0(n_embd, shared_ff), raw_dtype=Q.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {args.out}: {n_layer} layers, {E} experts × {F} (n_ff {n_ff} padded to {n_ff_padded}), "
          f"top-k {E}, shared expert {shared_ff} (zero)")

    if args.check_llama_cpp:
        import llama_cpp
        prompt = "def fibonacci(n):"
        outs = []
        for path in (args.dense, args.out):
            llm = llama_cpp.Llama(model_path=path, n_ctx=256, n_threads=2, verbose=False)
            toks = llm.tokenize(prompt.encode())
            gen = []
            for tok in llm.generate(toks, temp=0.0, top_k=1):
                gen.append(tok)
                if len(gen) == 32:
                    break
            outs.append(gen)
        print("llama.cpp greedy tokens, dense :", outs[0])
        print("llama.cpp greedy tokens, re-cut:", outs[1])
        print("llama.cpp: re-cut", "matches" if outs[0] == outs[1] else "DIFFERS FROM", "the dense model")


if __name__ == "__main__":
    main()
