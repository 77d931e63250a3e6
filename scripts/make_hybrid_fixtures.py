#!/usr/bin/env python3
"""Tiny random-weight hybrid Qwen models (Gated DeltaNet + gated attention) and their reference
logits, for HybridTests.swift.

For each architecture (qwen3next, qwen35, qwen35moe) this script
  1. builds a tiny Hugging Face transformers model (F32, random weights, four layers mixing
     linear-attention and full-attention layers, grouped value heads, a few experts) from a
     literal config,
  2. records transformers' logits for a fixed token sequence (eager attention, CPU, F32; no
     cache, so transformers runs its chunked gated-delta-rule form),
  3. saves the model as a Hugging Face checkpoint (<arch>-hf/: config.json + safetensors, as
     `save_pretrained` writes it),
  4. converts that checkpoint with llama.cpp's own converter (`convert_hf_to_gguf.py` of the
     llama-cpp-python 0.3.36 sdist, run in-process: F32 output, no MTP layers, a placeholder
     SentencePiece vocabulary because the tiny models have no tokenizer), so the GGUF carries
     exactly llama.cpp's names and transforms (norm weights +1, A = -exp(A_log), conv1d
     squeezed, qwen3next's in_proj_qkvz split into attn_qkv/attn_gate, qwen3.5's value heads
     reordered from grouped to tiled),
  5. records llama.cpp's logits on that GGUF (llama-cpp-python, F32 KV cache, no flash attention),
and writes Tests/SparrowModelsTests/Fixtures/hybrid/<arch>.gguf, <arch>.json and <arch>-hf/, and
for qwen3next and qwen35moe llama.cpp's Q8_0 quantization <arch>-q8_0.gguf. For qwen35moe it
also checks that llama.cpp's converter gives the same tensors from the checkpoint laid out as
`Qwen3_5MoeForConditionalGeneration` (text_config, model.language_model., fused experts).

The JSON holds the config, the tokens, every position's logits from both references, and the
smallest top-k routing margin (MoE architectures), so a reader knows no routing decision is a
near-tie that rounding could flip.

    pip install torch transformers safetensors llama-cpp-python==0.3.36
    # the llama.cpp converter from the sdist (found at $LLAMA_CPP_DIR or /tmp/lcp/...):
    pip download --no-binary :all: --no-deps llama-cpp-python==0.3.36 && tar xzf llama_cpp_python-0.3.36.tar.gz
    python3 scripts/make_hybrid_fixtures.py          # rewrites the fixtures

Tokenizers are not needed: the models are fed token ids.
"""

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_moe_fixtures import llama_cpp_logits, llama_cpp_quantize  # noqa: E402  (shared with the MoE fixtures)

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "SparrowModelsTests", "Fixtures", "hybrid")
LLAMA_CPP_DIR = os.environ.get("LLAMA_CPP_DIR", "/tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp")
# Routing decisions must be at least this far from a tie (router logit gap).
MIN_MARGIN = 2e-3
TOKENS = [3, 17, 42, 5, 99, 64, 12, 7, 120, 33, 8, 77, 3, 17, 42, 90, 61, 2, 45, 100]
# Architectures whose GGUF llama.cpp also quantizes to Q8_0 (<arch>-q8_0.gguf; both β/α layouts).
QUANTIZED = {"qwen3next", "qwen35moe"}
# Architectures whose text weights are also converted from a vision-language checkpoint layout.
VISION_LANGUAGE = {"qwen35moe": "Qwen3_5MoeForConditionalGeneration"}
# Largest fixture (GGUF or HF directory) we are willing to commit.
MAX_BYTES = 300_000

# Shared by all three: four layers, 2 key heads serving 4 value heads (so the grouped vs tiled
# value-head order matters), head dims 8 (llama.cpp needs key dim == value dim), conv kernel 4.
COMMON = dict(
    vocab_size=128, hidden_size=32, num_hidden_layers=4,
    num_attention_heads=4, num_key_value_heads=2, head_dim=16,
    linear_conv_kernel_dim=4, linear_key_head_dim=8, linear_value_head_dim=8,
    linear_num_key_heads=2, linear_num_value_heads=4,
    max_position_embeddings=64, rms_norm_eps=1e-6, hidden_act="silu",
)

CONFIGS = {
    # Qwen3-Next: MoE with a shared expert in every layer, NeoX RoPE on a quarter of the head.
    "qwen3next": dict(
        COMMON, model_type="qwen3_next",
        intermediate_size=48, moe_intermediate_size=16, shared_expert_intermediate_size=24,
        num_experts=4, num_experts_per_tok=2, norm_topk_prob=True,
        decoder_sparse_step=1, mlp_only_layers=[],
        layer_types=["linear_attention", "full_attention", "linear_attention", "full_attention"],
        rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.25),
        tie_word_embeddings=False,
    ),
    # Qwen3.5 dense: SwiGLU MLP, interleaved M-RoPE (text positions: plain NeoX) on half the
    # head, tied output, two linear layers in a row.
    "qwen35": dict(
        COMMON, model_type="qwen3_5_text",
        intermediate_size=48,
        layer_types=["linear_attention", "linear_attention", "full_attention", "linear_attention"],
        rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.5,
                             mrope_section=[2, 1, 1], mrope_interleaved=True),
        tie_word_embeddings=True,
    ),
    # Qwen3.5 MoE: routed experts (always renormalised) + sigmoid-gated shared expert.
    "qwen35moe": dict(
        COMMON, model_type="qwen3_5_moe_text",
        moe_intermediate_size=16, shared_expert_intermediate_size=24,
        num_experts=4, num_experts_per_tok=2,
        layer_types=["linear_attention", "full_attention", "linear_attention", "full_attention"],
        rope_parameters=dict(rope_type="default", rope_theta=1000000.0, partial_rotary_factor=0.25,
                             mrope_section=[1, 1, 0], mrope_interleaved=True),
        tie_word_embeddings=False,
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
    # transformers initialises with std 0.02 (and zero-centred norms at 0), which leaves every
    # activation tiny; use weights that keep activations O(1) so the comparison exercises real
    # numerics, and decays spread over (0.2, 0.95) per token so the recurrent state matters.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("linear_attn.norm.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))        # gated norm: applied as w
            elif name.endswith("norm.weight"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))            # zero-centred: applied as 1 + w
            elif name.endswith("A_log"):
                p.copy_(torch.log(0.05 + 1.5 * torch.rand(p.shape, generator=g)))
            elif name.endswith("dt_bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif name.endswith("conv1d.weight"):
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)
            elif name.endswith("mlp.gate.weight"):
                p.copy_(2 * torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)  # router logits ~N(0, 4)
            else:
                fan_in = p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
    model.eval()
    return model


def routing_margin(model, tokens):
    """Smallest gap between the k-th and (k+1)-th router logit over all layers/tokens (inf when dense)."""
    margins = []
    hooks = []
    k = getattr(model.config, "num_experts_per_tok", 0)

    def hook(module, inputs, _output):
        x = inputs[0].reshape(-1, inputs[0].shape[-1])
        logits = x @ module.weight.T
        top = torch.topk(logits, min(k + 1, logits.shape[-1]), dim=-1).values
        margins.append(float((top[:, k - 1] - top[:, k]).min()))

    for layer in model.model.layers:
        if hasattr(layer.mlp, "gate") and hasattr(layer.mlp.gate, "weight") and layer.mlp.gate.weight.ndim == 2 \
                and layer.mlp.gate.weight.shape[0] == getattr(model.config, "num_experts", -1):
            hooks.append(layer.mlp.gate.register_forward_hook(hook))
    with torch.no_grad():
        model(torch.tensor([tokens]))
    for h in hooks:
        h.remove()
    return min(margins) if margins else float("inf")


def convert_with_llama_cpp(hf_dir: str, out: str):
    """llama.cpp's convert_hf_to_gguf.py on `hf_dir`, in-process, F32, without MTP layers and
    with a placeholder vocabulary (the converter's only step that needs tokenizer files)."""
    sys.path.insert(0, os.path.join(LLAMA_CPP_DIR, "gguf-py"))
    sys.path.insert(0, LLAMA_CPP_DIR)
    import gguf
    from conversion import ModelBase, ModelType, get_model_architecture, get_model_class

    def placeholder_vocab(self):
        n = self.hparams["vocab_size"]
        self.gguf_writer.add_tokenizer_model("llama")
        self.gguf_writer.add_token_list([f"<t{i}>".encode() for i in range(n)])
        self.gguf_writer.add_token_scores([0.0] * n)
        self.gguf_writer.add_token_types([gguf.TokenType.NORMAL] * n)

    hparams = ModelBase.load_hparams(Path(hf_dir), False)
    cls = get_model_class(get_model_architecture(hparams, ModelType.TEXT), mmproj=False)
    cls.no_mtp = True
    cls.set_vocab = placeholder_vocab
    with torch.inference_mode():
        cls(Path(hf_dir), gguf.LlamaFileType.ALL_F32, Path(out), eager=True).write()


def vision_language_layout(hf_dir: str, out_dir: str, arch_name: str):
    """The same text weights laid out as a `Qwen3_5*ForConditionalGeneration` checkpoint:
    config keys nested in text_config, tensors under model.language_model., routed experts fused
    into [E, 2·ff, d] gate_up_proj / [E, d, ff] down_proj, plus a vision tensor and an MTP
    tensor that a text conversion must leave out."""
    from safetensors.torch import load_file, save_file

    sd = load_file(os.path.join(hf_dir, "model.safetensors"))
    out = {}
    experts = {}
    for name, t in sd.items():
        parts = name.split(".")
        if len(parts) >= 7 and parts[3] == "mlp" and parts[4] == "experts" and parts[5].isdigit():
            experts.setdefault(int(parts[2]), {})[(int(parts[5]), parts[6])] = t
            continue
        out[name.replace("model.", "model.language_model.", 1) if name.startswith("model.") else name] = t
    for layer, byKey in experts.items():
        n = max(e for e, _ in byKey) + 1
        gate_up = torch.stack([torch.cat([byKey[(e, "gate_proj")], byKey[(e, "up_proj")]], dim=0) for e in range(n)])
        down = torch.stack([byKey[(e, "down_proj")] for e in range(n)])
        out[f"model.language_model.layers.{layer}.mlp.experts.gate_up_proj"] = gate_up.contiguous()
        out[f"model.language_model.layers.{layer}.mlp.experts.down_proj"] = down.contiguous()
    out["model.visual.patch_embed.proj.weight"] = torch.zeros(4, 3)
    out["mtp.fc.weight"] = torch.zeros(4, 4)
    os.makedirs(out_dir, exist_ok=True)
    save_file(out, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(hf_dir, "config.json")) as f:
        text = json.load(f)
    text.pop("architectures", None)
    config = dict(architectures=[arch_name], model_type=text["model_type"].removesuffix("_text"),
                  tie_word_embeddings=text.get("tie_word_embeddings", False), text_config=text,
                  vision_config=dict(depth=1, hidden_size=4))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def same_tensors(a: str, b: str) -> bool:
    sys.path.insert(0, os.path.join(LLAMA_CPP_DIR, "gguf-py"))
    import gguf

    ra, rb = gguf.GGUFReader(a), gguf.GGUFReader(b)
    ta = {t.name: t for t in ra.tensors}
    tb = {t.name: t for t in rb.tensors}
    return ta.keys() == tb.keys() and all(
        list(ta[n].shape) == list(tb[n].shape) and np.array_equal(ta[n].data, tb[n].data) for n in ta)


def rows(a: np.ndarray):
    # 9 significant digits round-trip every f32 exactly.
    return [[float(f"{v:.9g}") for v in row] for row in a]


def directory_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    only = sys.argv[1:] or list(CONFIGS)
    for arch in only:
        cfg = CONFIGS[arch]
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

        hf_dir = os.path.join(OUT_DIR, f"{arch}-hf")
        shutil.rmtree(hf_dir, ignore_errors=True)
        model.save_pretrained(hf_dir)
        for extra in ("generation_config.json",):
            if os.path.exists(os.path.join(hf_dir, extra)):
                os.remove(os.path.join(hf_dir, extra))

        gguf_path = os.path.join(OUT_DIR, f"{arch}.gguf")
        convert_with_llama_cpp(hf_dir, gguf_path)
        lc = llama_cpp_logits(gguf_path, TOKENS, cfg["vocab_size"])
        if arch in QUANTIZED:
            # llama.cpp's Q8_0 quantization, for `sparrow quantize` to match byte for byte.
            import llama_cpp
            q8_path = os.path.join(OUT_DIR, f"{arch}-q8_0.gguf")
            llama_cpp_quantize(gguf_path, q8_path, llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0)
            q8 = llama_cpp_logits(q8_path, TOKENS, cfg["vocab_size"])
        if arch in VISION_LANGUAGE:
            # The converter reads a vision-language checkpoint's text part to the same tensors
            # (HybridTests builds the same layout and expects Sparrow's conversion to agree).
            with tempfile.TemporaryDirectory() as tmp:
                vl_dir = os.path.join(tmp, "vl")
                vision_language_layout(hf_dir, vl_dir, VISION_LANGUAGE[arch])
                vl_gguf = os.path.join(tmp, "vl.gguf")
                convert_with_llama_cpp(vl_dir, vl_gguf)
                if not same_tensors(gguf_path, vl_gguf):
                    sys.exit(f"{arch}: the {VISION_LANGUAGE[arch]} layout converts to different tensors")
                print(f"{arch}: {VISION_LANGUAGE[arch]} layout (fused experts) converts to the same tensors")
        scale = float(np.abs(hf).max())
        rel = float(np.abs(lc - hf).max()) / scale
        sizes = (os.path.getsize(gguf_path), directory_bytes(hf_dir))
        print(f"{arch}: llama.cpp vs transformers max|Δ|/max|ref| = {rel:.3e}, routing margin {margin:.3e}, "
              f"gguf {sizes[0]} bytes, hf {sizes[1]} bytes")
        if max(sizes) > MAX_BYTES:
            sys.exit(f"{arch}: a fixture exceeds {MAX_BYTES} bytes; shrink the config")
        fixture = dict(
            architecture=arch,
            hf_config=cfg,
            tokens=TOKENS,
            seed=seed,
            min_routing_margin=margin if np.isfinite(margin) else None,
            llama_cpp_vs_transformers=rel,
            transformers_version=__import__("transformers").__version__,
            torch_version=torch.__version__,
            llama_cpp_python_version=__import__("llama_cpp").__version__,
            transformers_logits=rows(hf),
            llama_cpp_logits=rows(lc),
        )
        if arch in QUANTIZED:
            # llama.cpp on its own Q8_0 file: 8-bit weights and activations move these tiny random
            # models' logits by tens of percent from F32 (so Q8_0 is checked against this, not transformers).
            fixture["llama_cpp_q8_0_logits"] = rows(q8)
        with open(os.path.join(OUT_DIR, f"{arch}.json"), "w") as f:
            json.dump(fixture, f)


if __name__ == "__main__":
    main()
