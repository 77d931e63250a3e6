#!/usr/bin/env python3
"""Golden outputs from llama.cpp (via llama-cpp-python) for Sparrow's real-model tests.

For each model and prompt: the prompt tokens, 64 greedy tokens, and at every step the top-2
log-probabilities (so the Swift test can tell a real divergence from a near tie), plus the
first step's top-64 logits. Chat prompts are rendered with Python jinja2 configured as
transformers' apply_chat_template, from the template stored in the GGUF.

    pip install llama-cpp-python==0.3.36 jinja2 numpy
    python3 scripts/make_reference_fixtures.py --models-dir ~/.cache/sparrow/models

Writes Tests/SparrowModelsTests/Fixtures/<name>.json.
"""
import argparse, json, os, sys

import jinja2
import numpy as np
from jinja2.sandbox import ImmutableSandboxedEnvironment
import llama_cpp

MODELS = {
    "smollm2-135m": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "qwen2.5-coder-0.5b": "qwen2.5-coder-0.5b-instruct.gguf",
    "qwen2.5-coder-1.5b": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
}

RAW_PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n",
    "Once upon a time, in a small village by the sea,",
    "1, 2, 3, 5, 8, 13,",
    "<|im_start|>user\nList three prime numbers.<|im_end|>\n<|im_start|>assistant\n",
    "Photosynthesis converts light energy into",
]

CHAT_PROMPTS = [
    [{"role": "user", "content": "Write a Python function that reverses a string."}],
    [{"role": "system", "content": "You are a terse assistant."}, {"role": "user", "content": "What is 17 * 23?"}],
    [{"role": "user", "content": "Explain what a hash map is in two sentences."}],
    [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a fun fact about octopuses."}],
    [{"role": "user", "content": "Translate 'good morning' into French, Spanish and German."}],
]

N_GEN = 64
N_CTX = 1024


def render(template, messages, bos, eos):
    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, bos_token=bos, eos_token=eos)


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max()
    return x - m - np.log(np.exp(x - m).sum())


def greedy(llm, prompt_tokens):
    llm.reset()
    llm.eval(prompt_tokens)
    out, margins, top2 = [], [], []
    first_logits = None
    for step in range(N_GEN):
        # With logits_all=False only the batch's last row exists, read straight from the context.
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).astype(np.float32).copy()
        if first_logits is None:
            first_logits = logits.copy()
        lp = log_softmax(logits)
        order = np.argsort(-lp, kind="stable")[:2]
        tok = int(order[0])
        top2.append([[int(order[0]), float(lp[order[0]])], [int(order[1]), float(lp[order[1]])]])
        if llama_cpp.llama_vocab_is_eog(llm._model.vocab, tok):
            out.append(tok)
            break
        out.append(tok)
        llm.eval([tok])
    return out, top2, first_logits


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models-dir", default=os.environ.get("SPARROW_MODELS", os.path.expanduser("~/.cache/sparrow/models")))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Tests", "SparrowModelsTests", "Fixtures"))
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    for name, file in MODELS.items():
        if args.only and name not in args.only:
            continue
        path = os.path.join(args.models_dir, file)
        llm = llama_cpp.Llama(model_path=path, n_ctx=N_CTX, n_threads=args.threads, n_batch=512, verbose=False, logits_all=False)
        meta = llm.metadata
        template = meta.get("tokenizer.chat_template")
        vocab = llm._model.vocab
        def piece(i):
            return llm._model.token_get_text(i) if i >= 0 else ""
        bos_id = int(meta.get("tokenizer.ggml.bos_token_id", -1))
        eos_id = int(meta.get("tokenizer.ggml.eos_token_id", -1))
        bos = llm.detokenize([bos_id], special=True).decode("utf-8", "replace") if bos_id >= 0 else ""
        eos = llm.detokenize([eos_id], special=True).decode("utf-8", "replace") if eos_id >= 0 else ""
        cases = []
        prompts = [("raw", p, p) for p in RAW_PROMPTS] + [("chat", m, render(template, m, bos, eos)) for m in CHAT_PROMPTS]
        for kind, source, text in prompts:
            tokens = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
            gen, top2, first = greedy(llm, tokens)
            top = np.argsort(-first, kind="stable")[:64]
            cases.append({
                "kind": kind,
                "prompt": source if kind == "raw" else None,
                "messages": source if kind == "chat" else None,
                "rendered": text,
                "prompt_tokens": tokens,
                "tokens": gen,
                "top2": top2,
                "first_logits": {"ids": [int(i) for i in top], "values": [float(first[i]) for i in top]},
                "text": llm.detokenize(gen).decode("utf-8", "replace"),
            })
            print(f"{name} {kind}: {len(tokens)} prompt tokens -> {len(gen)} tokens: {cases[-1]['text'][:60]!r}", file=sys.stderr)
        fixture = {"model": name, "file": file, "llama_cpp_python": llama_cpp.__version__, "n_ctx": N_CTX,
                   "threads": args.threads, "n_gen": N_GEN, "cases": cases}
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, f"{name}.json"), "w") as f:
            json.dump(fixture, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
