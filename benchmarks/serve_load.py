#!/usr/bin/env python3
"""Bounded loopback load test for `sparrow serve`: valid and malformed requests mixed.

Starts `sparrow serve` (or uses --url), then for --minutes keeps --workers clients busy with a
random mix of good chat/completions requests (plain and streamed, some abandoned mid-stream)
and bad ones (malformed JSON, unknown model, bad parameters, oversize body, wrong key). Checks:
every request gets an HTTP answer (no connection errors), no 5xx except 503 while stopping,
the server process is alive at the end, and its RSS stays within --rss-tolerance of the value
after warm-up.

    python3 benchmarks/serve_load.py --binary .build/release/sparrow --model FILE [--minutes 10]
"""
import argparse
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

KEY = "sk-load"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def request(url, body, key=KEY, raw=None, stream=False, abandon=False):
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            if stream:
                for i, _ in enumerate(r):
                    if abandon and i > 3:
                        return r.status  # close the connection mid-stream
            else:
                r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code


def one(base, model, rng):
    chat = base + "/v1/chat/completions"
    msg = [{"role": "user", "content": rng.choice(["Hi", "Write a function that adds two numbers.", "Name three colors."])}]
    kind = rng.randrange(10)
    if kind == 0:
        return "malformed", request(chat, None, raw=b'{"model": "x", "messages": [')
    if kind == 1:
        return "unknown_model", request(chat, {"model": "nope", "messages": msg})
    if kind == 2:
        return "bad_param", request(chat, {"model": model, "messages": msg, "temperature": 9})
    if kind == 3:
        return "too_large", request(chat, None, raw=b'{"model": "' + b"x" * (300 * 1024) + b'"}')
    if kind == 4:
        return "bad_key", request(chat, {"model": model, "messages": msg}, key="wrong")
    if kind == 5:
        return "abandoned_stream", request(chat, {"model": model, "messages": msg, "stream": True, "max_tokens": 200},
                                           stream=True, abandon=True)
    if kind == 6:
        return "completion", request(base + "/v1/completions", {"model": model, "prompt": "def f(x):", "max_tokens": 16})
    if kind == 7:
        return "stream", request(chat, {"model": model, "messages": msg, "stream": True, "max_tokens": 24}, stream=True)
    return "chat", request(chat, {"model": model, "messages": msg, "max_tokens": 24, "temperature": 0.7})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=".build/release/sparrow")
    ap.add_argument("--model", required=True)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--workers", type=int, default=6)
    ap.add_argument("--rss-tolerance", type=float, default=0.10)
    a = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([a.binary, "serve", "--model", a.model, "--port", str(port), "--api-key", KEY,
                             "--model-name", "load", "--max-request-bytes", str(256 * 1024), "--queue-size", "16"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(base + "/health", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    counts, failures, lock = {}, [], threading.Lock()
    stop = time.time() + a.minutes * 60
    warm_rss = [None]

    def worker(seed):
        rng = random.Random(seed)
        while time.time() < stop:
            try:
                kind, status = one(base, "load", rng)
            except Exception as e:  # a request without an HTTP answer
                with lock:
                    failures.append(repr(e))
                continue
            with lock:
                counts[(kind, status)] = counts.get((kind, status), 0) + 1
                if status >= 500:
                    failures.append(f"{kind}: HTTP {status}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(a.workers)]
    for t in threads:
        t.start()
    samples = []
    start = time.time()
    while any(t.is_alive() for t in threads):
        time.sleep(5)
        if proc.poll() is None:
            samples.append(rss_kib(proc.pid))
            if warm_rss[0] is None and time.time() - start > min(60, a.minutes * 60 / 4):
                warm_rss[0] = samples[-1]
    for t in threads:
        t.join()
    alive = proc.poll() is None
    final_rss = rss_kib(proc.pid) if alive else 0
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    warm = warm_rss[0] or (samples[0] if samples else 0)
    growth = (final_rss - warm) / warm if warm else 0
    total = sum(counts.values())
    print(json.dumps({"requests": total, "by_kind_status": {f"{k}:{s}": n for (k, s), n in sorted(counts.items())},
                      "unanswered_or_5xx": len(failures), "examples": failures[:5], "alive": alive,
                      "rss_warm_mib": round(warm / 1024, 1), "rss_final_mib": round(final_rss / 1024, 1),
                      "rss_max_mib": round(max(samples or [0]) / 1024, 1), "rss_growth": round(growth, 3)}, indent=1))
    ok = alive and not failures and abs(growth) <= a.rss_tolerance
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
