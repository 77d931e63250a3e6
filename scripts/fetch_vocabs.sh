#!/usr/bin/env bash
# Fetch llama.cpp's tokenizer test vocabularies (ggml-vocab-*.gguf plus the .inp/.out
# test vectors) from the llama-cpp-python sdist on PyPI, which vendors llama.cpp.
#
# Usage: scripts/fetch_vocabs.sh [DIR]
#   DIR defaults to $SPARROW_VOCAB_DIR, then ~/.cache/sparrow/vocab.
# Idempotent: does nothing when the files are already there.
# Tests read SPARROW_VOCAB_DIR (or the default directory).
set -euo pipefail

VERSION="0.3.36"
DIR="${1:-${SPARROW_VOCAB_DIR:-$HOME/.cache/sparrow/vocab}}"
STAMP="$DIR/.llama-cpp-python-$VERSION"
mkdir -p "$DIR"

if [[ -f "$STAMP" ]] && ls "$DIR"/ggml-vocab-*.gguf.inp >/dev/null 2>&1; then
    echo "vocabularies already in $DIR"
    exit 0
fi

SDIST="$DIR/sdist/llama_cpp_python-$VERSION.tar.gz"
if [[ ! -f "$SDIST" ]]; then
    mkdir -p "$DIR/sdist"
    PIP="${PIP:-pip3}"
    command -v "$PIP" >/dev/null 2>&1 || PIP="python3 -m pip"
    # Only the package itself as an sdist: its build dependencies (needed by pip to read
    # the sdist's metadata) may come as wheels, so nothing gets compiled.
    $PIP download --no-deps --no-binary llama-cpp-python -d "$DIR/sdist" "llama-cpp-python==$VERSION"
fi

# Extract only the vocab files, flattened into DIR.
python3 - "$SDIST" "$DIR" <<'PY'
import os, sys, tarfile
sdist, out = sys.argv[1], sys.argv[2]
n = 0
with tarfile.open(sdist, "r:gz") as tf:
    for m in tf:
        name = os.path.basename(m.name)
        if not m.isfile() or "/vendor/llama.cpp/models/" not in m.name:
            continue
        if not name.startswith("ggml-vocab-"):
            continue
        if not (name.endswith(".gguf") or name.endswith(".gguf.inp") or name.endswith(".gguf.out")):
            continue
        src = tf.extractfile(m)
        tmp = os.path.join(out, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(src.read())
        os.replace(tmp, os.path.join(out, name))
        n += 1
print(f"extracted {n} vocab files into {out}")
PY
touch "$STAMP"
