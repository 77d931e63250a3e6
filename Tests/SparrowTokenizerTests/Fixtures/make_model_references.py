#!/usr/bin/env python3
"""Regenerate model_references.json: token ids for varied strings from the real model
vocabularies, computed by llama.cpp through llama-cpp-python (preferred) or, when that is
not installed, by HF `tokenizers` rebuilt from the GGUF metadata (use --hf to force).

Usage: make_model_references.py [--hf] [MODELS_DIR]   (default /work/models)
"""
import json, os, sys

STRINGS = [
    "Hello world",
    " Hello world",
    "Hello, world! How are you?",
    "  two leading spaces and two trailing  ",
    "line one\nline two\r\nline three\n\n\nend",
    "\t\ttabs\tand    runs     of      spaces",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < 10; ++i) { sum += a[i] * b[i]; }",
    "let x: [String: Int] = [\"a\": 1, \"b\": 2] // Swift",
    "<div class=\"main\">&nbsp;</div>",
    "SELECT * FROM users WHERE id = 42 AND name LIKE '%bob%';",
    "3.14159 2.71828 1234567890 007 1,000,000.00 -42 1e-9 0xDEADBEEF",
    "2024-05-01T12:34:56Z 192.168.0.1 +1 (555) 123-4567",
    "I'm sure you're right; they've said we'll see, it's HE'S and I'D",
    "café naïve Straße über façade coöperate",
    "日本語のテキストと中文字符和한국어",
    "Привет, мир! Γειά σου κόσμε. שלום עולם. مرحبا بالعالم",
    "नमस्ते दुनिया ສະບາຍດີ สวัสดีชาวโลก",
    "emoji 🦙🚀 😶‍🌫️ 👍🏽 🇫🇷 ✅ 👨‍👩‍👧‍👦 🪿",
    "math ∑_{i=1}^{n} x_i ≤ √2 · π ≠ ∞ → ∀x∃y",
    "nbsp\u00a0em\u2003ideo\u3000nel\u0085zwj\u200d",
    "combining e\u0301 a\u0308 n\u0303 and precomposed é ä ñ",
    "!!!???...;;;:::---___===+++***&&&^^^%%%$$$###@@@",
    "a" * 50,
    "ab " * 20,
    "CamelCaseIdentifierWithNumbers123AndMORE",
    "snake_case_identifier = some_function(arg_one, arg_two)",
    "https://example.com/path?query=1&other=two#frag",
    "'quoted' \"double\" `back` «guillemets» „low“",
    "",
    " ",
    "\n",
    "   \n   \n",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text after end<|im_end|>",
    "<|im_start|><|im_start|>nested<|im_end|> <|im_end|>",
    "text with <|fim_prefix|>fim<|fim_suffix|> tokens<|fim_middle|>",
    "fake <|im_start token and <|im_end |> not special",
    "<think>\nreasoning\n</think>\n\nanswer",
    "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
]

MODELS = [
    ("qwen2.5-coder-0.5b-instruct.gguf", "qwen2"),
    ("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm"),
]

VARIANTS = [(False, False), (False, True), (True, True)]  # (add_special, parse_special)


def with_llama_cpp(path):
    import llama_cpp
    llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    return "llama-cpp-python " + llama_cpp.__version__, lambda s, add, special: llm.tokenize(s.encode("utf-8"), add_bos=add, special=special)


def with_hf(path):
    import gguf
    from tokenizers import Tokenizer, models, pre_tokenizers, Regex, AddedToken
    r = gguf.GGUFReader(path)
    f = r.fields
    def arr(k):
        fl = f[k]
        return [bytes(fl.parts[i]).decode("utf-8") for i in fl.data]
    def val(k):
        fl = f.get(k)
        return None if fl is None else fl.contents()
    tokens, merges = arr("tokenizer.ggml.tokens"), arr("tokenizer.ggml.merges")
    types = f["tokenizer.ggml.token_type"].contents()
    pre = val("tokenizer.ggml.pre")
    vocab = {t: i for i, t in enumerate(tokens)}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges]))
    if pre == "qwen2":
        rx = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
        tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(rx), behavior="isolated"),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    elif pre == "smollm":
        tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    else:
        raise SystemExit(f"no HF rebuild for pre-tokenizer {pre}")
    special = [t for t, ty in zip(tokens, types) if ty in (3, 4)]
    tk.add_tokens([AddedToken(t, special=False, normalized=False) for t, ty in zip(tokens, types) if ty == 4])
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3])
    add_bos = bool(val("tokenizer.ggml.add_bos_token") or False)
    bos = val("tokenizer.ggml.bos_token_id")
    control = {t for t, ty in zip(tokens, types) if ty == 3}

    def tok(s, add, parse_special):
        ids = []
        if add and add_bos:
            ids.append(bos)
        if parse_special:
            ids += tk.encode(s, add_special_tokens=False).ids
        else:
            # HF always splits added tokens; emulate llama.cpp by encoding control tokens as text.
            raise NotImplementedError
        return ids
    return "HF tokenizers (rebuilt from GGUF)", tok


def main():
    args = [a for a in sys.argv[1:] if a != "--hf"]
    force_hf = "--hf" in sys.argv
    models_dir = args[0] if args else "/work/models"
    out = {"generator": None, "cases": []}
    for fname, pre in MODELS:
        path = os.path.join(models_dir, fname)
        if force_hf:
            gen, tok = with_hf(path)
        else:
            try:
                gen, tok = with_llama_cpp(path)
            except ImportError:
                gen, tok = with_hf(path)
        out["generator"] = gen
        for s in STRINGS:
            for add, special in VARIANTS:
                try:
                    ids = tok(s, add, special)
                except NotImplementedError:
                    continue
                out["cases"].append({"model": fname, "text": s, "add_special": add, "parse_special": special, "tokens": list(ids)})
    dest = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model_references.json")
    with open(dest, "w", encoding="utf-8") as fh:
        fh.write('{"generator": %s, "cases": [\n' % json.dumps(out["generator"]))
        fh.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in out["cases"]))
        fh.write("\n]}\n")
    print(f"{len(out['cases'])} cases from {out['generator']} -> {dest}")


main()
