#!/usr/bin/env python3
"""Writes a GGUF file with Qwen3.6-35B-A3B's exact shapes and random weights (all matrices
Q4_K, norms/router/conv/SSM vectors F32, as llama-quantize leaves them), for measuring expert
offloading (`sparrow bench --memory-budget`) and llama.cpp on a model of the real size without
downloading it. About 19.6 GB; streamed tensor by tensor (peak memory ~200 MB), a few minutes.

    python3 scripts/make_synthetic_moe.py                      # ~/.cache/sparrow/synthetic/qwen36-35b-a3b-synthetic-q4_k.gguf
    python3 scripts/make_synthetic_moe.py --router-skew 0.5 --routers-only FILE   # re-bias the routers in place
    python3 scripts/make_synthetic_moe.py --router-skew 0   --routers-only FILE   # back to the unbiased routers

The file is not a trained model: its text is noise. Random routers over random hidden states
pick experts near-uniformly, the worst case for an expert cache. `--router-skew S` scales the
router row of the expert with popularity rank r (a fixed random permutation per layer) by
(r + 1)^-S, so a few experts per layer win most tokens, as trained routers' skewed usage does;
`--routers-only` rewrites only the router tensors of an existing file (same seed, same other
weights), so the biased and unbiased runs use identical experts.

Where each number comes from (Qwen3.6-35B-A3B has Qwen3.5-35B-A3B's architecture, `qwen35moe`):
- transformers 5.24 `Qwen3_5MoeTextConfig` defaults, whose docstring names the checkpoint
  Qwen/Qwen3.5-35B-A3B (models/qwen3_5_moe/configuration_qwen3_5_moe.py): vocab_size 248320,
  hidden_size 2048, num_hidden_layers 40, num_attention_heads 16, num_key_value_heads 2,
  head_dim 256, rms_norm_eps 1e-6, linear_conv_kernel_dim 4, linear_key_head_dim 128,
  linear_value_head_dim 128, linear_num_key_heads 16, linear_num_value_heads 32,
  moe_intermediate_size 512, shared_expert_intermediate_size 512, num_experts_per_tok 8,
  num_experts 256, partial_rotary_factor 0.25, full_attention_interval 4 (layer i is full
  attention when (i + 1) % 4 == 0), max_position_embeddings 32768, tie_word_embeddings False.
- llama.cpp conversion/qwen.py `_Qwen35MRopeMixin`: rope.dimension_sections [11, 11, 10, 0];
  `Qwen3NextModel.set_gguf_parameters`: ssm.conv_kernel = linear_conv_kernel_dim, ssm.state_size
  = linear_key_head_dim, ssm.group_count = linear_num_key_heads, ssm.time_step_rank =
  linear_num_value_heads, ssm.inner_size = linear_value_head_dim * linear_num_value_heads,
  rope.dimension_count = head_dim * partial_rotary_factor.
- llama.cpp src/models/qwen35moe.cpp `load_tensors`: the tensor names and shapes below
  (attn_q is [n_embd, head_dim * n_head * 2]: query and output gate; attn_qkv [n_embd,
  2 * key_dim + value_dim]; attn_gate [n_embd, value_dim]; ssm_conv1d [d_conv, conv_dim];
  ssm_beta/ssm_alpha [n_embd, n_v_heads]; ffn_*_exps; ffn_*_shexp; ffn_gate_inp_shexp [n_embd]).
- llama.cpp src/llama-quant.cpp: tensors not quantized are 1-D, `*_norm.weight`,
  `ffn_gate_inp.weight` (routers) and `ssm_conv1d`; everything else gets the target type.
- rope.freq_base: transformers' default is 10000; the published checkpoint's config.json uses
  1e7 (not available offline here). Random weights make it irrelevant; 1e7 is written.
- The multi-token-prediction layer of the real checkpoint (nextn_predict_layers 1) is left out:
  neither Sparrow nor llama-bench runs it.
- Vocabulary: llama.cpp's test vocabulary models/ggml-vocab-qwen35.gguf (151936 tokens, qwen35
  pre-tokenizer, merges; fetched to ~/.cache/sparrow/vocab by scripts/fetch_vocabs.sh), padded
  to 248320 with `[PAD{i}]` tokens of type UNUSED as llama.cpp's converter pads vocabularies.
"""
import argparse
import os
import sys
import time

import numpy as np
import gguf

ARCH = "qwen35moe"
VOCAB_SIZE = 248320
D = 2048
LAYERS = 40
HEADS, KV_HEADS, HEAD_DIM = 16, 2, 256
LIN_K_HEADS, LIN_V_HEADS, LIN_K_DIM, LIN_V_DIM, CONV_KERNEL = 16, 32, 128, 128, 4
EXPERTS, EXPERTS_USED, FF_EXP, FF_SHEXP = 256, 8, 512, 512
FULL_ATTENTION_INTERVAL = 4
ROPE_DIMS = int(HEAD_DIM * 0.25)
KEY_DIM = LIN_K_HEADS * LIN_K_DIM      # 2048
VALUE_DIM = LIN_V_HEADS * LIN_V_DIM    # 4096
CONV_DIM = 2 * KEY_DIM + VALUE_DIM     # 8192

Q4_K = gguf.GGMLQuantizationType.Q4_K
F32 = gguf.GGMLQuantizationType.F32
BLOCK, BLOCK_BYTES = gguf.GGML_QUANT_SIZES[Q4_K]  # 256 values in 144 bytes (ggml block_q4_K)


def is_full_attention(i):
    return (i + 1) % FULL_ATTENTION_INTERVAL == 0


def tensor_plan():
    """(name, ggml shape [ne0, ne1, ...], type) in file order."""
    plan = [("token_embd.weight", [D, VOCAB_SIZE], Q4_K),
            ("output_norm.weight", [D], F32),
            ("output.weight", [D, VOCAB_SIZE], Q4_K)]
    for i in range(LAYERS):
        p = f"blk.{i}."
        plan.append((p + "attn_norm.weight", [D], F32))
        if is_full_attention(i):
            plan += [(p + "attn_q.weight", [D, HEAD_DIM * HEADS * 2], Q4_K),
                     (p + "attn_k.weight", [D, HEAD_DIM * KV_HEADS], Q4_K),
                     (p + "attn_v.weight", [D, HEAD_DIM * KV_HEADS], Q4_K),
                     (p + "attn_output.weight", [HEAD_DIM * HEADS, D], Q4_K),
                     (p + "attn_q_norm.weight", [HEAD_DIM], F32),
                     (p + "attn_k_norm.weight", [HEAD_DIM], F32)]
        else:
            plan += [(p + "attn_qkv.weight", [D, CONV_DIM], Q4_K),
                     (p + "attn_gate.weight", [D, VALUE_DIM], Q4_K),
                     (p + "ssm_conv1d.weight", [CONV_KERNEL, CONV_DIM], F32),
                     (p + "ssm_dt.bias", [LIN_V_HEADS], F32),
                     (p + "ssm_a", [LIN_V_HEADS], F32),
                     (p + "ssm_beta.weight", [D, LIN_V_HEADS], Q4_K),
                     (p + "ssm_alpha.weight", [D, LIN_V_HEADS], Q4_K),
                     (p + "ssm_norm.weight", [LIN_V_DIM], F32),
                     (p + "ssm_out.weight", [VALUE_DIM, D], Q4_K)]
        plan += [(p + "post_attention_norm.weight", [D], F32),
                 (p + "ffn_gate_inp.weight", [D, EXPERTS], F32),
                 (p + "ffn_gate_exps.weight", [D, FF_EXP, EXPERTS], Q4_K),
                 (p + "ffn_up_exps.weight", [D, FF_EXP, EXPERTS], Q4_K),
                 (p + "ffn_down_exps.weight", [FF_EXP, D, EXPERTS], Q4_K),
                 (p + "ffn_gate_inp_shexp.weight", [D], F32),
                 (p + "ffn_gate_shexp.weight", [D, FF_SHEXP], Q4_K),
                 (p + "ffn_up_shexp.weight", [D, FF_SHEXP], Q4_K),
                 (p + "ffn_down_shexp.weight", [FF_SHEXP, D], Q4_K)]
    return plan


def nbytes(shape, qtype):
    n = int(np.prod(shape))
    return n * 4 if qtype == F32 else n // BLOCK * BLOCK_BYTES


def byte_shape(shape, qtype):
    """numpy (row-major) shape of the raw bytes gguf's writer expects."""
    rev = list(reversed(shape))
    if qtype == F32:
        return rev
    return rev[:-1] + [rev[-1] // BLOCK * BLOCK_BYTES]


def q4_k_blocks(rng, n_blocks, cols, gain=1.0):
    """Random ggml block_q4_K bytes: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes
    of 4-bit quants. A value is d·sc·q − dmin·m (q in 0..15, sc and m in 0..63); with uniform
    random sc, q, m and dmin = 7.5·d its mean is 0 and its std ≈ 258·d, so d = gain / (258 ·
    sqrt(cols)) gives weights of std gain/sqrt(cols) (outputs of about the inputs' scale).
    Each block's d varies by ×[0.5, 1.5) so blocks differ in scale as trained ones do."""
    raw = np.frombuffer(rng.bytes(n_blocks * BLOCK_BYTES), dtype=np.uint8).reshape(n_blocks, BLOCK_BYTES).copy()
    d = (gain / (258.0 * np.sqrt(cols))) * (0.5 + rng.random(n_blocks, dtype=np.float32))
    raw[:, 0:2] = d.astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    raw[:, 2:4] = (d * 7.5).astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    return raw


def router(layer, seed, skew):
    """[EXPERTS, D] f32 router (numpy order), std 1/sqrt(D) before the skew."""
    rng = np.random.default_rng([seed, 1_000_003, layer])
    w = rng.standard_normal((EXPERTS, D), dtype=np.float32) / np.float32(np.sqrt(D))
    if skew > 0:
        rank = rng.permutation(EXPERTS)  # expert e has popularity rank rank[e]
        w *= ((rank + 1.0) ** -skew).astype(np.float32)[:, None]
    return w


def f32_tensor(name, shape, rng, seed, skew):
    n = int(np.prod(shape))
    layer = int(name.split(".")[1]) if name.startswith("blk.") else -1
    if name.endswith("ffn_gate_inp.weight"):
        return router(layer, seed, skew)
    if name.endswith("ssm_a"):  # −exp(A_log), A_log = log(U(1, 16)) as transformers initialises it
        return -rng.uniform(1, 16, n).astype(np.float32)
    if name.endswith("ssm_dt.bias"):
        return np.ones(n, dtype=np.float32)
    if name.endswith("ssm_conv1d.weight"):
        return (rng.standard_normal(n, dtype=np.float32) * 0.5).reshape(list(reversed(shape)))
    if name.endswith("ffn_gate_inp_shexp.weight"):
        return rng.standard_normal(n, dtype=np.float32) / np.float32(np.sqrt(D))
    # Norm weights: GGUF stores llama.cpp's 1 + w for the zero-centred norms; ~1 either way.
    return (1 + 0.1 * rng.standard_normal(n, dtype=np.float32)).reshape(list(reversed(shape)))


def vocabulary(path):
    r = gguf.GGUFReader(path)
    tokens = list(r.fields["tokenizer.ggml.tokens"].contents())
    types = list(r.fields["tokenizer.ggml.token_type"].contents())
    merges = list(r.fields["tokenizer.ggml.merges"].contents())
    eos = r.fields["tokenizer.ggml.eos_token_id"].contents()
    template = r.fields["tokenizer.chat_template"].contents()
    pad = VOCAB_SIZE - len(tokens)
    tokens += [f"[PAD{i}]" for i in range(len(tokens), VOCAB_SIZE)]
    types += [int(gguf.TokenType.UNUSED)] * pad
    return tokens, types, merges, eos, template


def write(path, vocab_path, seed, skew):
    tokens, types, merges, eos, template = vocabulary(vocab_path)
    w = gguf.GGUFWriter(path, ARCH)
    w.add_type("model")
    w.add_name("Qwen3.6-35B-A3B synthetic (random Q4_K weights)")
    w.add_block_count(LAYERS)
    w.add_context_length(32768)
    w.add_embedding_length(D)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_dimension_sections([11, 11, 10, 0])
    w.add_rope_freq_base(1e7)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_expert_count(EXPERTS)
    w.add_expert_used_count(EXPERTS_USED)
    w.add_key_length(HEAD_DIM)
    w.add_value_length(HEAD_DIM)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_S)
    w.add_expert_feed_forward_length(FF_EXP)
    w.add_expert_shared_feed_forward_length(FF_SHEXP)
    w.add_ssm_conv_kernel(CONV_KERNEL)
    w.add_ssm_state_size(LIN_K_DIM)
    w.add_ssm_group_count(LIN_K_HEADS)
    w.add_ssm_time_step_rank(LIN_V_HEADS)
    w.add_ssm_inner_size(VALUE_DIM)
    w.add_array(f"{ARCH}.attention.recurrent_layers", [not is_full_attention(i) for i in range(LAYERS)])
    w.add_full_attention_interval(FULL_ATTENTION_INTERVAL)
    w.add_rope_dimension_count(ROPE_DIMS)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen35")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(int(eos))
    w.add_pad_token_id(int(eos))
    w.add_bos_token_id(int(eos))
    w.add_add_bos_token(False)
    w.add_chat_template(template)

    plan = tensor_plan()
    for name, shape, qtype in plan:
        w.add_tensor_info(name, byte_shape(shape, qtype), np.dtype(np.uint8 if qtype == Q4_K else np.float32),
                          nbytes(shape, qtype), raw_dtype=qtype if qtype == Q4_K else None)
    w.open_output_file()
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()

    total = sum(nbytes(s, q) for _, s, q in plan)
    done, t0 = 0, time.time()
    rng = np.random.default_rng(seed)
    for name, shape, qtype in plan:
        if qtype == F32:
            data = f32_tensor(name, shape, rng, seed, skew)
        else:
            n_blocks = int(np.prod(shape)) // BLOCK
            data = q4_k_blocks(rng, n_blocks, shape[0]).reshape(byte_shape(shape, qtype))
        w.write_tensor_data(data)
        done += data.nbytes
        print(f"\r{done / 1e9:6.2f} / {total / 1e9:.2f} GB  {time.time() - t0:5.0f} s  {name:40s}",
              end="", file=sys.stderr, flush=True)
    w.close()
    print(file=sys.stderr)


def rewrite_routers(path, seed, skew):
    """Overwrites every `ffn_gate_inp.weight` of an existing file with the routers `seed` and
    `skew` give; the rest of the file is untouched."""
    r = gguf.GGUFReader(path)
    spans = [(t.name, int(t.data_offset), int(t.n_bytes)) for t in r.tensors if t.name.endswith("ffn_gate_inp.weight")]
    del r
    with open(path, "r+b") as f:
        for name, offset, n in spans:
            data = router(int(name.split(".")[1]), seed, skew)
            assert data.nbytes == n, (name, data.nbytes, n)
            f.seek(offset)
            f.write(data.tobytes())
    print(f"rewrote {len(spans)} routers with skew {skew}", file=sys.stderr)


def check(path):
    """Dequantizes a few expert rows and reports their statistics (finite, about the intended scale)."""
    r = gguf.GGUFReader(path)
    t = next(t for t in r.tensors if t.name == "blk.0.ffn_gate_exps.weight")
    rows = gguf.quants.dequantize(np.asarray(t.data[0, :4]), Q4_K)
    print(f"blk.0.ffn_gate_exps[0] rows 0..3: mean {rows.mean():.3g} std {rows.std():.3g} "
          f"(target {1 / np.sqrt(D):.3g}), finite {np.isfinite(rows).all()}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = os.path.expanduser("~/.cache/sparrow/synthetic/qwen36-35b-a3b-synthetic-q4_k.gguf")
    ap.add_argument("--out", default=default, help=f"output file (default {default})")
    ap.add_argument("--vocab", default=os.path.expanduser("~/.cache/sparrow/vocab/ggml-vocab-qwen35.gguf"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--router-skew", type=float, default=0.0,
                    help="scale router rows by (rank + 1)^-S so some experts win most tokens (0 = unbiased)")
    ap.add_argument("--routers-only", metavar="FILE", help="rewrite only the routers of this existing file")
    a = ap.parse_args()
    if a.router_skew < 0:
        ap.error("--router-skew must be ≥ 0")
    if a.routers_only:
        rewrite_routers(a.routers_only, a.seed, a.router_skew)
        return
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    write(a.out, a.vocab, a.seed, a.router_skew)
    check(a.out)
    print(a.out)


if __name__ == "__main__":
    main()
