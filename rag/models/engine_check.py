"""Which passage engine embeds fastest on this machine: measured once, kept per machine.

The engines of the e5 family give the same vectors (rag.models.base.E5_FAMILY), so the fastest one can be
picked freely. Which one that is depends on the CPU more than its flags say: on an AMD EPYC with AVX512-BF16,
PyTorch under bfloat16 autocast embeds 1.5x ONNX Runtime's passages/s (docs/embed_levers.md), while on an
Intel Xeon with AMX it gained only 1.2x over float32, and PyTorch float32 beat ONNX Runtime there
(../shared/FINDINGS.md). So instead of reading /proc/cpuinfo the first big batch on a CPU times each engine
on the same fixed passages (after one call that loads it), and the fastest is recorded in
`<model_dir>/passage_engine.json` under a key made of the CPU, its flags, the thread count and the engine
libraries' versions: another machine (or an upgraded library) measures again; this one never does.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from rag.fs import atomic_write_json
from rag.models.llama_build import cpu_flags, cpu_name

log = logging.getLogger(__name__)

CANDIDATES = ("onnx", "torch", "torch-bf16")
CACHE_FILE = "passage_engine.json"

# Fixed passages of the shape ingestion embeds (~400-700 characters, Chinese and English): the same on every
# machine, so that two machines' numbers compare.
_EN = ("The Transformer relies entirely on attention to draw global dependencies between input and output. "
       "Multi-head attention lets the model attend to information from different representation subspaces. "
       "Positional encodings inject the order of the tokens, since the model contains no recurrence. "
       "BM25 ranks documents by term frequency, inverse document frequency and document length. "
       "Reciprocal rank fusion adds one over a constant plus the rank for each ranking a document appears in. ")
_ZH = ("向量检索把问题和段落编码成向量，再按余弦相似度找出最接近的段落。关键词检索按词频和逆文档频率为文档打分。"
       "混合检索把两种排序用倒数排名融合合并，兼顾语义和字面匹配。长文档先切成几百字的片段，每个片段单独编码。"
       "大语言模型根据检索到的片段回答问题，并注明出处的文件和页码。")


def sample_passages(n: int = 32) -> list[str]:
    """n passages, alternately English (~960 characters) and Chinese (~300), the size of a default chunk
    (256 tokens), each a rotation of its text (all different)."""
    out = []
    for i in range(n):
        text = _EN if i % 2 == 0 else _ZH
        cut = (i * 37) % len(text)
        out.append((text[cut:] + text[:cut]) * 2)
    return out


def machine_key(threads: int) -> str:
    """This CPU, its flags, the threads used and the engines' library versions."""
    versions = []
    for package in ("torch", "onnxruntime"):
        try:
            versions.append(f"{package}={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{package}=none")
    flags = hashlib.sha256(" ".join(sorted(cpu_flags())).encode()).hexdigest()[:12]
    return f"{cpu_name() or 'unknown CPU'} | flags {flags} | {os.cpu_count()} cpus | threads {threads or 'all'} | {' '.join(versions)}"


def make_passage_engine(engine: str, model_dir: str, device: str, threads: int):
    """A passage engine of the e5 family by name (made, not loaded)."""
    if engine == "onnx":
        from rag.models.e5_onnx_embedder import E5OnnxEmbedder

        return E5OnnxEmbedder(model_dir=model_dir, threads=threads)
    from rag.models.e5_torch_embedder import E5TorchEmbedder

    return E5TorchEmbedder(model_dir=model_dir, device=device, threads=threads, bf16=engine == "torch-bf16")


def recorded(model_dir: str | Path, threads: int, candidates: tuple[str, ...] = CANDIDATES) -> str | None:
    """The engine this machine measured fastest already (None when it has not measured)."""
    try:
        entry = json.loads((Path(model_dir) / CACHE_FILE).read_text(encoding="utf-8")).get(machine_key(threads), {})
    except (OSError, ValueError):
        return None
    return entry.get("engine") if entry.get("engine") in candidates else None


def fastest_engine_elsewhere(model_dir: str | Path, threads: int) -> str:
    """fastest_engine() of the default engines, measured in a child process the first time (the three engines
    loaded side by side would stay in this process's memory: ~1 GB more at the peak of an ingestion)."""
    if (engine := recorded(model_dir, threads)) is not None:
        return engine
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    run = subprocess.run([sys.executable, "-m", "rag.models.engine_check", str(model_dir), str(threads)],
                         capture_output=True, text=True, env=env)
    if run.returncode != 0 or (engine := recorded(model_dir, threads)) is None:
        raise RuntimeError(f"measuring the passage engines failed: {run.stderr.strip()[-500:]}")
    return engine


def fastest_engine(model_dir: str | Path, threads: int, make: Callable[[str], object],
                   candidates: tuple[str, ...] = CANDIDATES, rounds: int = 3) -> str:
    """The engine of `candidates` that embeds sample_passages() fastest here: read from the cache when this
    machine measured it already, else measured now (`make(engine)` builds one; each is loaded by a first
    call, then timed `rounds` times, interleaved, best time kept) and recorded."""
    if (engine := recorded(model_dir, threads, candidates)) is not None:
        return engine
    path = Path(model_dir) / CACHE_FILE
    key = machine_key(threads)
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    log.info("measuring which passage engine is fastest on this machine (once; %s)", key)
    passages = sample_passages()
    engines = {name: make(name) for name in candidates}
    for engine in engines.values():
        engine.embed_passages(passages[:4])  # loads the model (and exports the ONNX graph the first time)
    best = {name: float("inf") for name in engines}
    for _ in range(rounds):
        for name, engine in engines.items():
            t = time.perf_counter()
            engine.embed_passages(passages)
            best[name] = min(best[name], time.perf_counter() - t)
    chosen = min(best, key=best.get)
    rates = {name: round(len(passages) / seconds, 2) for name, seconds in best.items()}
    log.info("passage engine for this machine: %s (passages/s: %s)", chosen, rates)
    cache[key] = {"engine": chosen, "passages_per_s": rates, "passages": len(passages),
                  "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, cache)
    return chosen


if __name__ == "__main__":  # python -m rag.models.engine_check MODEL_DIR THREADS: measure, record, print the winner
    folder, n = sys.argv[1], int(sys.argv[2])
    print(fastest_engine(folder, n, lambda name: make_passage_engine(name, folder, "cpu", n)))
