#!/usr/bin/env python3
"""Sparrow's server vs llama-server on the same GGUF file, same threads, in one run.

Starts `sparrow serve` and then `llama-server` (built from the llama-cpp-python sdist by
benchmarks/llamacpp.py, or LLAMA_SERVER), each with --parallel N sequence slots and T threads,
and measures each with benchmarks/serve_bench.py: one stream alone, N concurrent streams
(aggregate generated tokens / wall time; `ignore_eos` so every stream generates --tokens), and
the time to first token of two requests sharing a ~2,000-token system prompt. Each server is
measured --rounds times; the table shows medians.

    python3 benchmarks/serve_compare.py [--model qwen2.5-coder-0.5b] [--streams 8] [--tokens 64]
                                        [-t 2] [--rounds 2]

Issue 5's targets: sparrow's N-stream aggregate ≥ 1.2× llama-server's and ≥ 3× its own single
stream; second TTFT ≤ 15% of the first.
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from llamacpp import tool  # noqa: E402
from serve_bench import measure  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(cmd, port, log):
    """Starts a server, waits for /health, returns the process."""
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}): {' '.join(cmd)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except Exception:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"server did not become healthy: {' '.join(cmd)}")


def bench(cmd, port, rounds, streams, tokens, log):
    proc = serve(cmd, port, log)
    try:
        runs = [measure(f"http://127.0.0.1:{port}", "", "m", streams, tokens) for _ in range(rounds)]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("--context", type=int, default=4096, help="context per sequence")
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()

    subprocess.run(["swift", "build", "-c", "release", "--product", "sparrow"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    sparrow = os.path.join(ROOT, ".build", "release", "sparrow")
    path = subprocess.run([sparrow, "pull", a.model], check=True, text=True,
                          capture_output=True).stdout.strip().splitlines()[-1]
    server = tool("llama-server")
    log = open(os.path.join(ROOT, ".build", "serve_compare.log"), "w")
    port = free_port()
    ours = bench([sparrow, "serve", "--model", path, "--model-name", "m", "--port", str(port), "--threads", str(a.t),
                  "--parallel", str(a.streams), "--context", str(a.context)], port, a.rounds, a.streams, a.tokens, log)
    port = free_port()
    theirs = bench([server, "-m", path, "--alias", "m", "--port", str(port), "-t", str(a.t), "--parallel", str(a.streams),
                    "-c", str(a.context * a.streams)], port, a.rounds, a.streams, a.tokens, log)

    print(f"\n{os.path.basename(path)}, threads {a.t}, {a.streams} slots, {a.tokens} tokens per stream, "
          f"medians of {a.rounds} rounds\n")
    print("| server | 1 stream tok/s | %d streams tok/s | aggregate / single | TTFT 2k prompt | TTFT same prefix | ratio |" % a.streams)
    print("|---|---|---|---|---|---|---|")
    for name, r in (("sparrow", ours), ("llama-server", theirs)):
        print(f"| {name} | {r['single_stream_tok_s']:.1f} | {r['aggregate_tok_s']:.1f} | {r['aggregate_over_single']:.2f} | "
              f"{r['ttft_first_s']:.2f} s | {r['ttft_second_s']:.2f} s | {r['ttft_ratio']:.3f} |")
    print(f"\nsparrow / llama-server aggregate: {ours['aggregate_tok_s'] / theirs['aggregate_tok_s']:.2f}×")


if __name__ == "__main__":
    main()
