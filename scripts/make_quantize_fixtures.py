#!/usr/bin/env python3
"""llama.cpp's own quantization of a small random model, for `sparrow quantize`'s encoders.

    pip install gguf numpy llama-cpp-python
    python3 scripts/make_quantize_fixtures.py

Builds a one-layer qwen3 GGUF in F32 whose values come from SplitMix64 (so the Swift test
regenerates them exactly instead of committing the F32 file), quantizes it with
llama_model_quantize to Q4_K_M (Q4_K and Q6_K tensors, Q5_0 / Q8_0 fallbacks for rows that
256 does not divide, F32 norms), and writes
Tests/SparrowModelsTests/Fixtures/quantize/q4_k_m.gguf.

Values: tensors in sorted-name order, tensor i seeded with 1000 + i; each value is
((z >> 40) / 2^24) * 2 - 1 for successive SplitMix64 outputs z (exact in f32); norm weights
are 1 + value / 8.
"""
import os
import sys
import tempfile

import numpy as np

import gguf

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "SparrowModelsTests", "Fixtures", "quantize")
M64 = (1 << 64) - 1

# [name, ggml shape]; d 256, 2 heads of 80 (q width 160: Q5_0 fallback), ff 288 (down rows: fallback).
D, HEADS, KV_HEADS, HEAD_DIM, FF, VOCAB = 256, 2, 1, 80, 288, 64
TENSORS = {
    "token_embd.weight": [D, VOCAB],
    "output.weight": [D, VOCAB],
    "output_norm.weight": [D],
    "blk.0.attn_norm.weight": [D],
    "blk.0.attn_q.weight": [D, HEADS * HEAD_DIM],
    "blk.0.attn_k.weight": [D, KV_HEADS * HEAD_DIM],
    "blk.0.attn_v.weight": [D, KV_HEADS * HEAD_DIM],
    "blk.0.attn_output.weight": [HEADS * HEAD_DIM, D],
    "blk.0.attn_q_norm.weight": [HEAD_DIM],
    "blk.0.attn_k_norm.weight": [HEAD_DIM],
    "blk.0.ffn_norm.weight": [D],
    "blk.0.ffn_gate.weight": [D, FF],
    "blk.0.ffn_up.weight": [D, FF],
    "blk.0.ffn_down.weight": [FF, D],
}


def splitmix_values(seed: int, n: int) -> np.ndarray:
    state, out = seed & M64, np.empty(n, dtype=np.float32)
    for i in range(n):
        state = (state + 0x9E3779B97F4A7C15) & M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        z ^= z >> 31
        out[i] = np.float32((z >> 40) / float(1 << 24) * 2 - 1)
    return out


def main():
    import llama_cpp

    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "f32.gguf")
        w = gguf.GGUFWriter(src, "qwen3")
        w.add_context_length(64)
        w.add_embedding_length(D)
        w.add_block_count(1)
        w.add_feed_forward_length(FF)
        w.add_head_count(HEADS)
        w.add_head_count_kv(KV_HEADS)
        w.add_key_length(HEAD_DIM)
        w.add_value_length(HEAD_DIM)
        w.add_layer_norm_rms_eps(1e-6)
        w.add_file_type(gguf.LlamaFileType.ALL_F32)
        w.add_tokenizer_model("llama")
        w.add_token_list([f"<t{i}>".encode() for i in range(VOCAB)])
        w.add_token_scores([0.0] * VOCAB)
        w.add_token_types([gguf.TokenType.NORMAL] * VOCAB)
        for i, name in enumerate(sorted(TENSORS)):
            shape = TENSORS[name]
            v = splitmix_values(1000 + i, int(np.prod(shape)))
            if name.endswith("norm.weight"):
                v = (1 + v / 8).astype(np.float32)
            w.add_tensor(name, v.reshape(list(reversed(shape))))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
        params.nthread = 1
        dst = os.path.join(OUT, "q4_k_m.gguf")
        if llama_cpp.llama_model_quantize(src.encode(), dst.encode(), params) != 0:
            sys.exit("llama_model_quantize failed")
    r = gguf.GGUFReader(dst)
    for t in r.tensors:
        print(f"{t.name:28s} {t.tensor_type.name:5s} {list(t.shape)}")
    print(f"wrote {dst}: {os.path.getsize(dst)} bytes")


if __name__ == "__main__":
    main()
