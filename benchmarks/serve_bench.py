#!/usr/bin/env python3
"""Serving benchmark: aggregate decode throughput under concurrency, and prefix-cache TTFT.

Measures one OpenAI-compatible server (sparrow serve, or llama-server for comparison) with
streamed chat requests:
  1. one stream alone          → tokens/s of a single stream
  2. N concurrent streams      → aggregate tokens/s (sum of generated tokens / wall time)
  3. a ~2,000-token shared system prompt sent twice → time to first token of each

    python3 benchmarks/serve_bench.py --url http://127.0.0.1:8080 --model NAME [--key KEY]
        [--streams 8] [--tokens 128] [--json]

Issue 5's targets: (2) ≥ 3× (1) and ≥ 1.2× llama-server --parallel 8 on the same model and
machine; (3) second TTFT ≤ 15% of the first. Run both servers with the same file and threads.
Only the standard library is used, so it runs anywhere python3 does.
"""
import argparse
import json
import threading
import time
import urllib.request


def stream_chat(url, key, model, messages, max_tokens):
    """Returns (time to first token, seconds, tokens generated) of one streamed request."""
    body = json.dumps({"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0,
                       "stream": True, "stream_options": {"include_usage": True},
                       "ignore_eos": True}).encode()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    req = urllib.request.Request(url + "/v1/chat/completions", data=body, headers=headers)
    start = time.perf_counter()
    first = None
    tokens = 0
    with urllib.request.urlopen(req, timeout=600) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            for c in chunk.get("choices", []):
                if first is None and (c["delta"].get("content") or c["delta"].get("reasoning_content")):
                    first = time.perf_counter() - start
    return first or 0.0, time.perf_counter() - start, tokens


def concurrent(url, key, model, n, max_tokens):
    results = [None] * n
    draft = time.time_ns() % 100000  # new prompts every call: no earlier call's cache serves them

    def run(i):
        msgs = [{"role": "user", "content": f"Story {i}, draft {draft}: write a long story about a lighthouse keeper."}]
        results[i] = stream_chat(url, key, model, msgs, max_tokens)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    total = sum(r[2] for r in results)
    return total / wall, total, wall


def measure(url, key, model, streams, tokens):
    """Single-stream tok/s, aggregate tok/s of `streams` concurrent streams, and the time to
    first token of two requests sharing a ~2,000-token system prompt."""
    # One short request first pages the weights in, so the single stream is not a cold start.
    stream_chat(url, key, model, [{"role": "user", "content": "Warm-up: say hello."}], 8)
    single, _, _ = concurrent(url, key, model, 1, tokens)
    agg, _, _ = concurrent(url, key, model, streams, tokens)
    # ~2,000 tokens, new for every call so no earlier run's cache serves the first request
    system = f"Session {time.time_ns()}. " + " ".join(
        f"Rule {i}: be precise, cite sources, and keep answers short." for i in range(122))
    t1, _, _ = stream_chat(url, key, model, [{"role": "system", "content": system},
                                             {"role": "user", "content": "First question: what is a lighthouse?"}], 8)
    t2, _, _ = stream_chat(url, key, model, [{"role": "system", "content": system},
                                             {"role": "user", "content": "Second question: what is a harbor?"}], 8)
    return {"single_stream_tok_s": round(single, 2), "streams": streams, "aggregate_tok_s": round(agg, 2),
            "aggregate_over_single": round(agg / single, 2) if single else None,
            "ttft_first_s": round(t1, 3), "ttft_second_s": round(t2, 3),
            "ttft_ratio": round(t2 / t1, 3) if t1 else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--model", required=True)
    ap.add_argument("--key", default="")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    out = measure(a.url, a.key, a.model, a.streams, a.tokens)
    if a.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>24}: {v}")


if __name__ == "__main__":
    main()
