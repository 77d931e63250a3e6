#!/usr/bin/env python3
"""Sparrow vs llama.cpp on the same GGUF files, same threads, in one run.

Builds llama-bench from the llama-cpp-python 0.3.36 sdist (benchmarks/llamacpp.py; cached in
~/.cache/sparrow/llama.cpp; or set LLAMA_BENCH to an existing binary), runs llama-bench and `sparrow bench` alternately, measures memory
bandwidth with a STREAM-style triad, and prints one table: pp and tg for both engines, the
ratios, the decode bound (bandwidth / weight bytes read per token) and each engine's share of it.

    python3 benchmarks/compare.py [--models smollm2-135m qwen2.5-coder-0.5b qwen2.5-coder-1.5b]
                                  [-p 128] [-n 64] [-t 2] [-r 5]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llamacpp import tool  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


TRIAD = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#define N (64*1024*1024/8)
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(void){double *a=malloc(N*8),*b=malloc(N*8),*c=malloc(N*8);double best=0;
for(long i=0;i<N;i++){a[i]=0;b[i]=1;c[i]=2;}
for(int r=0;r<10;r++){double t=now();
#pragma omp parallel for
for(long i=0;i<N;i++)a[i]=b[i]+3.0*c[i];
t=now()-t;double bw=3.0*N*8/t/1e9;if(bw>best)best=bw;}
printf("%f\n",best+a[N/2]*0);return 0;}
"""


def bandwidth(threads):
    """Best of 10 STREAM triads over 3 × 64 MiB, GB/s, with `threads` OpenMP threads."""
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "triad.c"), "w") as f:
            f.write(TRIAD)
        run(["gcc", "-O2", "-fopenmp", "-o", os.path.join(d, "triad"), os.path.join(d, "triad.c")])
        return float(run([os.path.join(d, "triad")], env={**os.environ, "OMP_NUM_THREADS": str(threads)}))


def bytes_per_token(path):
    """Weight bytes a decode step reads: every tensor except the input embedding (one row of it
    is read), unless the output layer is tied to it."""
    sys.path.insert(0, ROOT)
    import gguf
    r = gguf.GGUFReader(path)
    names = {t.name for t in r.tensors}
    total = 0
    for t in r.tensors:
        if t.name == "token_embd.weight" and "output.weight" in names:
            continue
        total += int(t.n_bytes)
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="*", default=["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
    ap.add_argument("-p", type=int, default=128)
    ap.add_argument("-n", type=int, default=64)
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("-r", type=int, default=5)
    args = ap.parse_args()

    run(["swift", "build", "-c", "release", "--product", "sparrow"], cwd=ROOT)
    sparrow = os.path.join(ROOT, ".build", "release", "sparrow")
    bench = tool("llama-bench")
    bw = bandwidth(args.t)
    rows = []
    for name in args.models:
        path = run([sparrow, "pull", name]).strip().splitlines()[-1]
        ours = {"pp": [], "tg": []}
        theirs = {"pp": [], "tg": []}
        for _ in range(args.r):
            out = json.loads(run([bench, "-m", path, "-p", str(args.p), "-n", str(args.n), "-t", str(args.t), "-r", "1", "-o", "json"]))
            for test in out:
                key = "pp" if test["n_prompt"] > 0 else "tg"
                theirs[key].append(test["avg_ts"])
            s = json.loads(run([sparrow, "bench", "--model", path, "-p", str(args.p), "-n", str(args.n), "-t", str(args.t), "-r", "1", "--json"]))
            ours["pp"].append(s["pp"]["median_tps"])
            ours["tg"].append(s["tg"]["median_tps"])
        bound = bw * 1e9 / bytes_per_token(path)
        m = {k: statistics.median(v) for k, v in ours.items()}
        l = {k: statistics.median(v) for k, v in theirs.items()}
        rows.append((name, m, l, bound))
    print(f"\nthreads {args.t}, {args.r} alternating runs each, medians; triad bandwidth {bw:.1f} GB/s\n")
    print(f"| model | pp{args.p} sparrow | pp{args.p} llama.cpp | pp ratio | tg{args.n} sparrow | tg{args.n} llama.cpp | tg ratio | decode bound | sparrow share | llama.cpp share |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, m, l, bound in rows:
        print(f"| {name} | {m['pp']:.1f} | {l['pp']:.1f} | {m['pp']/l['pp']:.2f} | {m['tg']:.1f} | {l['tg']:.1f} | {m['tg']/l['tg']:.2f} | {bound:.1f} | {m['tg']/bound:.0%} | {l['tg']/bound:.0%} |")


if __name__ == "__main__":
    main()
