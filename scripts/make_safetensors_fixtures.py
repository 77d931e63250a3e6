#!/usr/bin/env python3
"""Small safetensors files written by the reference `safetensors` library, for SafetensorsTests.

    pip install torch safetensors
    python3 scripts/make_safetensors_fixtures.py

Writes Tests/SparrowFormatsTests/Fixtures/safetensors/dtypes.safetensors (F32, F16, BF16, I32
and a 0-dimensional tensor, with __metadata__) and dtypes.json holding every tensor's dtype,
shape and values as exact f32 (the F16/BF16 values are generated already rounded, so the
float values in the JSON are exactly what the file stores).
"""
import json
import os

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "SparrowFormatsTests", "Fixtures", "safetensors")


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    tensors = {
        "a.f32": torch.randn(3, 5, generator=g),
        "b.f16": torch.randn(2, 3, 4, generator=g).to(torch.float16),
        "c.bf16": (torch.randn(7, generator=g) * 100).to(torch.bfloat16),
        "d.i32": torch.arange(-4, 6, dtype=torch.int32).reshape(2, 5),
        "e.scalar": torch.tensor(1.5),
    }
    save_file(tensors, os.path.join(OUT, "dtypes.safetensors"), metadata={"format": "pt", "note": "made by make_safetensors_fixtures.py"})
    expected = {
        name: {"shape": list(t.shape), "values": [float(v) for v in t.to(torch.float64).flatten()]}
        for name, t in tensors.items()
    }
    with open(os.path.join(OUT, "dtypes.json"), "w") as f:
        json.dump(expected, f, indent=1)


if __name__ == "__main__":
    main()
