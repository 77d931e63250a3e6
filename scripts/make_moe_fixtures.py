#!/usr/bin/env python3
"""Tiny random-weight sparse Qwen models and their reference logits, for MoETests.swift.

For each architecture (qwen2moe, qwen3moe) this script
  1. builds a tiny Hugging Face transformers model (F32, random weights, a few layers and
     experts) from a literal config,
  2. records transformers' logits for a fixed token sequence (eager attention, CPU, F32),
  3. writes the same weights as a GGUF file with the tensor names, shapes and metadata keys
     that llama.cpp's convert_hf_to_gguf.py writes for these architectures (F32 tensors,
     a placeholder SentencePiece vocabulary so llama.cpp can load the file),
  4. records llama.cpp's logits on that GGUF (llama-cpp-python, F32 KV cache, no flash
     attention),
and writes Tests/SparrowModelsTests/Fixtures/moe/<arch>.gguf and <arch>.json, and the same
weights as a Hugging Face checkpoint in <arch>-hf/ (qwen2moe sharded with an index), and
llama.cpp's Q8_0 quantization of the GGUF as <arch>-q8_0.gguf.

The JSON holds the config, the tokens, the logits of every position from both references,
and the smallest top-k routing margin seen (so a reader knows routing is not decided by a
near-tie that rounding could flip).

    pip install torch transformers safetensors gguf llama-cpp-python
    python3 scripts/make_moe_fixtures.py          # rewrites the fixtures

Tokenizers are not needed: the models are fed token ids.
"""

import json
import os
import shutil
import sys

import numpy as np
import torch

OUT_DIR = os.path.join(os.path.dirname(__file__), "..", "Tests", "SparrowModelsTests", "Fixtures", "moe")
# Routing decisions must be at least this far from a tie (router logit gap).
MIN_MARGIN = 2e-3
TOKENS = [3, 17, 42, 5, 99, 64, 12, 7, 120, 33, 8, 77]

# Literal configs. qwen2moe keeps norm_topk_prob false and qwen3moe true because llama.cpp
# hard-codes exactly that per architecture (src/models/qwen2moe.cpp, qwen3moe.cpp) and the
# released checkpoints use those values.
CONFIGS = {
    "qwen2moe": dict(
        model_type="qwen2_moe",
        vocab_size=128, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=48, moe_intermediate_size=24, shared_expert_intermediate_size=40,
        num_experts=6, num_experts_per_tok=2, norm_topk_prob=False,
        decoder_sparse_step=1, mlp_only_layers=[],
        max_position_embeddings=64, rope_theta=10000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=False, hidden_act="silu",
    ),
    "qwen3moe": dict(
        model_type="qwen3_moe",
        vocab_size=160, hidden_size=48, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        intermediate_size=64, moe_intermediate_size=16,
        num_experts=8, num_experts_per_tok=3, norm_topk_prob=True,
        decoder_sparse_step=1, mlp_only_layers=[],
        max_position_embeddings=64, rope_theta=1000000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=True, hidden_act="silu",
    ),
}


def build_model(cfg: dict, seed: int):
    from transformers import AutoConfig, AutoModelForCausalLM

    kwargs = dict(cfg)
    model_type = kwargs.pop("model_type")
    config = AutoConfig.for_model(model_type, **kwargs)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # transformers initialises with std 0.02, which leaves every activation tiny; use weights
    # that keep activations O(1) so the comparison exercises real numerics.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("mlp.gate.weight"):
                p.copy_(2 * torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)  # router logits ~N(0, 4)
            elif p.ndim == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))  # biases
            else:
                fan_in = p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
    model.eval()
    return model


def routing_margin(model, tokens):
    """Smallest gap between the k-th and (k+1)-th router logit over all layers/tokens."""
    margins = []
    hooks = []
    k = model.config.num_experts_per_tok

    def hook(_module, inputs, _output):
        x = inputs[0].reshape(-1, inputs[0].shape[-1])
        logits = x @ _module.weight.T
        top = torch.topk(logits, min(k + 1, logits.shape[-1]), dim=-1).values
        if top.shape[-1] > k:
            margins.append(float((top[:, k - 1] - top[:, k]).min()))

    for layer in model.model.layers:
        hooks.append(layer.mlp.gate.register_forward_hook(hook))
    with torch.no_grad():
        model(torch.tensor([tokens]))
    for h in hooks:
        h.remove()
    return min(margins)


def write_gguf(arch: str, model, path: str):
    """Writes `model` as llama.cpp's converter would (names from gguf-py's tensor map)."""
    import gguf

    c = model.config
    sd = {k: v.detach().to(torch.float32).numpy() for k, v in model.state_dict().items()}
    w = gguf.GGUFWriter(path, arch)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    if arch == "qwen3moe":
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_rope_freq_base(c.rope_parameters["rope_theta"] if hasattr(c, "rope_parameters") and c.rope_parameters else c.rope_theta)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_expert_count(c.num_experts)
    w.add_expert_used_count(c.num_experts_per_tok)
    w.add_expert_feed_forward_length(c.moe_intermediate_size)
    if arch == "qwen2moe":
        w.add_expert_shared_feed_forward_length(c.shared_expert_intermediate_size)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    # Placeholder SentencePiece vocabulary: llama.cpp needs one to size its logits.
    w.add_tokenizer_model("llama")
    w.add_token_list([f"<t{i}>".encode() for i in range(c.vocab_size)])
    w.add_token_scores([0.0] * c.vocab_size)
    w.add_token_types([gguf.TokenType.NORMAL] * c.vocab_size)

    def add(name, array):
        w.add_tensor(name, np.ascontiguousarray(array, dtype=np.float32))

    add("token_embd.weight", sd["model.embed_tokens.weight"])
    add("output_norm.weight", sd["model.norm.weight"])
    if not c.tie_word_embeddings:
        add("output.weight", sd["lm_head.weight"])
    for i in range(c.num_hidden_layers):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        add(b + "attn_norm.weight", sd[p + "input_layernorm.weight"])
        for hf, gg in (("q", "attn_q"), ("k", "attn_k"), ("v", "attn_v"), ("o", "attn_output")):
            add(b + gg + ".weight", sd[p + f"self_attn.{hf}_proj.weight"])
            if p + f"self_attn.{hf}_proj.bias" in sd:
                add(b + gg + ".bias", sd[p + f"self_attn.{hf}_proj.bias"])
        if p + "self_attn.q_norm.weight" in sd:
            add(b + "attn_q_norm.weight", sd[p + "self_attn.q_norm.weight"])
            add(b + "attn_k_norm.weight", sd[p + "self_attn.k_norm.weight"])
        add(b + "ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
        add(b + "ffn_gate_inp.weight", sd[p + "mlp.gate.weight"])                 # [E, d] → ne [d, E]
        gate_up = sd[p + "mlp.experts.gate_up_proj"]                               # [E, 2·ff, d]
        ff = gate_up.shape[1] // 2
        add(b + "ffn_gate_exps.weight", gate_up[:, :ff, :])                        # ne [d, ff, E]
        add(b + "ffn_up_exps.weight", gate_up[:, ff:, :])                          # ne [d, ff, E]
        add(b + "ffn_down_exps.weight", sd[p + "mlp.experts.down_proj"])           # [E, d, ff] → ne [ff, d, E]
        if p + "mlp.shared_expert_gate.weight" in sd:
            add(b + "ffn_gate_inp_shexp.weight", sd[p + "mlp.shared_expert_gate.weight"].reshape(-1))  # ne [d]
            add(b + "ffn_gate_shexp.weight", sd[p + "mlp.shared_expert.gate_proj.weight"])
            add(b + "ffn_up_shexp.weight", sd[p + "mlp.shared_expert.up_proj.weight"])
            add(b + "ffn_down_shexp.weight", sd[p + "mlp.shared_expert.down_proj.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llama_cpp_logits(path: str, tokens, vocab: int):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=path, n_ctx=64, n_batch=64, n_threads=2, logits_all=True,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32,
                          flash_attn=False, verbose=False)
    llm.eval(tokens)
    return np.array(llm.scores[: len(tokens), :vocab], dtype=np.float32)


def llama_cpp_quantize(src: str, dst: str, ftype: int):
    """llama.cpp's llama-quantize (llama_model_quantize) of src into dst."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 1
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), params)
    if rc != 0:
        sys.exit(f"llama_model_quantize({src}) failed: {rc}")


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    for arch, cfg in CONFIGS.items():
        # The first seed whose routing has no near-tie (so rounding cannot flip an expert).
        for seed in range(1, 200):
            model = build_model(cfg, seed)
            margin = routing_margin(model, TOKENS)
            if margin >= MIN_MARGIN:
                break
        else:
            sys.exit(f"{arch}: no seed below 200 gives a routing margin of {MIN_MARGIN}")
        with torch.no_grad():
            hf = model(torch.tensor([TOKENS])).logits[0].to(torch.float32).numpy()
        gguf_path = os.path.join(OUT_DIR, f"{arch}.gguf")
        write_gguf(arch, model, gguf_path)
        lc = llama_cpp_logits(gguf_path, TOKENS, cfg["vocab_size"])
        # llama.cpp's Q8_0 quantization of the same file, for `sparrow quantize` to match byte for byte.
        import llama_cpp
        llama_cpp_quantize(gguf_path, os.path.join(OUT_DIR, f"{arch}-q8_0.gguf"), llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0)
        scale = float(np.abs(hf).max())
        rel = float(np.abs(lc - hf).max()) / scale
        print(f"{arch}: llama.cpp vs transformers max|Δ|/max|ref| = {rel:.3e}, routing margin {margin:.3e}, "
              f"gguf {os.path.getsize(gguf_path)} bytes")
        fixture = dict(
            architecture=arch,
            hf_config=cfg,
            tokens=TOKENS,
            seed=seed,
            min_routing_margin=margin,
            transformers_version=__import__("transformers").__version__,
            torch_version=torch.__version__,
            llama_cpp_python_version=__import__("llama_cpp").__version__,
            transformers_logits=[[float(v) for v in row] for row in hf],
            llama_cpp_logits=[[float(v) for v in row] for row in lc],
        )
        with open(os.path.join(OUT_DIR, f"{arch}.json"), "w") as f:
            json.dump(fixture, f)
        # The same weights as a Hugging Face checkpoint (config.json + safetensors, per-expert
        # tensor names as on the Hub): qwen2moe sharded with an index, qwen3moe as one file.
        hf_dir = os.path.join(OUT_DIR, f"{arch}-hf")
        shutil.rmtree(hf_dir, ignore_errors=True)
        model.save_pretrained(hf_dir, max_shard_size="100KB" if arch == "qwen2moe" else "10MB")
        for extra in ("generation_config.json",):
            if os.path.exists(os.path.join(hf_dir, extra)):
                os.remove(os.path.join(hf_dir, extra))


if __name__ == "__main__":
    main()
