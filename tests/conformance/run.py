#!/usr/bin/env python3
"""Runs the conformance suite against live `sparrow serve` processes.

Starts three servers on free loopback ports with the same model file:
  main     — the model's own template, an API key (tests/conformance/test_*.py use it)
  thinking — the Qwen3.5 chat template (a Qwen3-style <think> template), for reasoning tests
  tight    — --parallel 1 --queue-size 0 --request-timeout 3, for 429 / timeout / disconnect tests
then runs pytest with their addresses in the environment and stops them (SIGTERM, graceful).

    python3 tests/conformance/run.py [--binary .build/release/sparrow] [--model FILE] [pytest args...]
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
KEY = "sk-conformance-test"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_model():
    store = os.environ.get("SPARROW_MODELS") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sparrow", "models")
    return os.path.join(store, "qwen2.5-coder-0.5b-instruct.gguf")


def start(binary, model, port, extra, log):
    cmd = [binary, "serve", "--model", model, "--host", "127.0.0.1", "--port", str(port), "--context", "4096"] + extra
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def wait_healthy(port, proc, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"sparrow serve on port {port} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"sparrow serve on port {port} did not become healthy in {timeout}s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, ".build/release/sparrow"))
    ap.add_argument("--model", default=default_model())
    args, pytest_args = ap.parse_known_args()
    if not os.path.exists(args.model):
        raise SystemExit(f"model file {args.model} not found (run `sparrow pull qwen2.5-coder-0.5b`)")
    template = os.path.join(ROOT, "Tests/SparrowTemplateTests/Fixtures/templates/Qwen3.5-4B.jinja")
    ports = {name: free_port() for name in ("main", "thinking", "tight")}
    logdir = os.path.join(ROOT, ".build", "conformance")
    os.makedirs(logdir, exist_ok=True)
    procs = {}
    rc = 1
    logs = {}
    try:
        for name, extra in (
            ("main", ["--api-key", KEY, "--parallel", "4", "--model-name", "sparrow-test"]),
            ("thinking", ["--chat-template", template, "--parallel", "2", "--model-name", "sparrow-thinking"]),
            ("tight", ["--parallel", "1", "--queue-size", "0", "--request-timeout", "3", "--model-name", "sparrow-tight",
                       "--max-request-bytes", "65536"]),
        ):
            logs[name] = open(os.path.join(logdir, f"{name}.log"), "w")
            procs[name] = start(args.binary, args.model, ports[name], extra, logs[name])
        for name, p in procs.items():
            wait_healthy(ports[name], p)
        env = dict(os.environ)
        for name, port in ports.items():
            env[f"SPARROW_{name.upper()}_URL"] = f"http://127.0.0.1:{port}"
        env["SPARROW_TEST_KEY"] = KEY
        rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", HERE] + pytest_args, env=env)
    finally:
        for name, p in procs.items():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in procs.items():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
            if p.returncode not in (0, None, -signal.SIGTERM):
                print(f"sparrow serve ({name}) exited with {p.returncode}; log in {logdir}/{name}.log")
                rc = rc or 1
    sys.exit(rc)


if __name__ == "__main__":
    main()
