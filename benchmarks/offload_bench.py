#!/usr/bin/env python3
"""Decode speed, expert-cache hit rate, bytes paged in per token and peak RSS of `sparrow bench`
under several memory budgets, and llama-bench on the same file, as a Markdown table.

    python3 benchmarks/offload_bench.py [--model FILE] [--budgets none,16GiB,8GiB,4GiB] [-n 16] [-r 3] [-t 2]

Before each run the model file is read into the page cache (warm), or dropped from it with
--cold. The model defaults to the synthetic Qwen3.6-35B-A3B file of scripts/make_synthetic_moe.py.
llama-bench comes from $LLAMA_BENCH (default /work/dl/llama-build/bin/llama-bench); its peak RSS
is read with /usr/bin/time -v. Runs one after another, never two at once.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def gib(b):
    return b / 2**30


def run_sparrow(sparrow, model, budget, n, r, t, extra):
    cmd = ["nice", "-n", "15", sparrow, "bench", "--model", model, "-p", "0", "-n", str(n), "-r", str(r), "-t", str(t), "--json"] + extra
    if budget != "none":
        cmd += ["--memory-budget", budget]
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    t0 = time.time()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    print(out.stderr.strip(), file=sys.stderr)
    j = json.loads(out.stdout.strip().splitlines()[-1])
    j["wall_s"] = time.time() - t0
    return j


def run_llama(llama, model, n, t, r, repack):
    cmd = ["nice", "-n", "15", "/usr/bin/time", "-v", llama, "-m", model, "-p", "0", "-n", str(n), "-t", str(t), "-r", str(r),
           "--repack", repack, "-o", "json"]
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    t0 = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    hwm = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
    if out.returncode != 0:
        print(out.stderr[-3000:], file=sys.stderr)
        return {"error": f"exit {out.returncode}", "wall_s": wall, "peak_rss_bytes": int(hwm.group(1)) * 1024 if hwm else None}
    tests = json.loads(out.stdout)
    tg = next(x for x in tests if x["n_gen"] > 0)
    return {"avg_ts": tg["avg_ts"], "stddev_ts": tg["stddev_ts"], "samples": tg.get("samples_ts"), "wall_s": wall,
            "peak_rss_bytes": int(hwm.group(1)) * 1024 if hwm else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/sparrow/synthetic/qwen36-35b-a3b-synthetic-q4_k.gguf"))
    ap.add_argument("--sparrow", default=os.path.join(ROOT, ".build/release/sparrow"))
    ap.add_argument("--llama-bench", default=os.environ.get("LLAMA_BENCH", "/work/dl/llama-build/bin/llama-bench"))
    ap.add_argument("--budgets", default="none,16GiB,8GiB,4GiB")
    ap.add_argument("--llama-repack", default="1,0",
                    help="llama-bench runs by --repack value: 1 copies Q4_K weights into interleaved anonymous buffers (its default), 0 reads them in place from the mapping")
    ap.add_argument("--no-llama", action="store_true")
    ap.add_argument("--cold", action="store_true",
                    help="drop the model file from the page cache (posix_fadvise DONTNEED) before each run, else read it all in first")
    ap.add_argument("--extra", default="", help="more sparrow bench arguments, e.g. '--expert-prefetch on'")
    ap.add_argument("-n", type=int, default=16)
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("-t", type=int, default=2)
    a = ap.parse_args()

    def page_cache():
        fd = os.open(a.model, os.O_RDONLY)
        try:
            if a.cold:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            else:
                while os.read(fd, 1 << 24):
                    pass
        finally:
            os.close(fd)

    rows = []
    for budget in a.budgets.split(","):
        page_cache()
        j = run_sparrow(a.sparrow, a.model, budget, a.n, a.r, a.t, a.extra.split())
        o = j.get("offload")
        rows.append([f"sparrow, budget {budget}", f"{j['tg']['median_tps']:.2f} ({j['tg']['min_tps']:.2f}–{j['tg']['max_tps']:.2f})",
                     f"{o['tg_hit_rate'] * 100:.1f}% (top {o['cache_slots']}: {o['top_slots_access_share'] * 100:.0f}%)" if o else "–",
                     f"{o['tg_paged_in_bytes_per_token'] / 2**20:.0f}" if o else "–",
                     f"{j['tg_storage_read_bytes_per_token'] / 2**20:.0f}",
                     f"{gib(o['cache_bytes']):.2f} ({o['cache_slots']}/{o['experts']})" if o else "–",
                     f"{gib(j['peak_rss_bytes']):.2f}", f"{gib(j['rss_file_bytes']):.2f} / {gib(j['rss_anon_bytes']):.2f}"])
        print(json.dumps({"budget": budget, **j}), flush=True)
    for repack in ([] if a.no_llama else a.llama_repack.split(",")):
        page_cache()
        l = run_llama(a.llama_bench, a.model, a.n, a.t, a.r, repack)
        print(json.dumps({"llama_bench": l, "repack": repack}), flush=True)
        tps = f"{l['avg_ts']:.2f} ± {l['stddev_ts']:.2f} ({min(l['samples']):.2f}–{max(l['samples']):.2f})" if "avg_ts" in l else l["error"]
        rows.append([f"llama.cpp (llama-bench, mmap, --repack {repack})", tps, "–", "–", "–", "–",
                     f"{gib(l['peak_rss_bytes']):.2f}" if l.get("peak_rss_bytes") else "?", "–"])
    print()
    print(f"| run | tg{a.n} tok/s median (min–max) | expert hit rate (share of picks the most used experts that fit took) | paged in MiB/token | storage reads MiB/token | expert cache GiB (slots/experts) | peak RSS GiB | RSS at end: file / anon GiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
