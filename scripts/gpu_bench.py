"""The GPU rows of `make bench` (issue 19): the default embedder's passage engine on a lent GPU machine.

The converted model (470 MB) cannot travel to a GPU machine whose upload limit is 64 MiB, so `prepare`
packs what the benchmark needs into .gpu/ (ignored by git): the encoder's weights in float16 (the GPU
runs float16 anyway), only the rows of the word-embedding matrix that the sampled chunks' tokens use (with
their ids), the tokenizer, the chunks, and this machine's float32 vectors of the first chunks. `run`
rebuilds a model folder from them there, the full vocabulary with the unused rows zero (those rows
are never read for these chunks, so every vector is the full model's), and runs the product's own code:

- device auto-selection: rag.models.base.resolve_device("auto"), the `e5` embedder's passage engine;
- vectors: cosine of the GPU's float16 vectors to this machine's float32 ones;
- throughput: chunks/s of E5TorchEmbedder.embed_passages on the sampled chunks (tokenising included),
  at ingestion's call size (Settings.embed_batch_size) and bigger calls, for several forward-pass cuts.

`report` writes docs/gpu.json and docs/gpu.md from the run's JSON.

    python scripts/gpu_bench.py prepare             # here, after make bench built its knowledge bases
    python scripts/gpu_bench.py run --out DIR       # on the GPU machine (device tool: carry .gpu)
    python scripts/gpu_bench.py report DIR/gpu.json # here
"""
from __future__ import annotations

import argparse
import lzma
import json
import os
import random
import time
from pathlib import Path

import numpy as np

from rag.eval.report import now, write_json, write_markdown

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / ".gpu"
SOURCE_KB = ROOT / ".eval-cache" / "bench-kb-100000-e5" / "kb.sqlite"
#: 2,000 chunks keep the pack (their vocabulary rows) and the working tree within the 64 MiB that travels;
#: each row embeds them REPEAT times
N_CHUNKS, N_CHECK, REPEAT = 2000, 256, 3
WORDS = "embeddings.word_embeddings.weight"
#: (label, passages per call, windows per forward pass, padded tokens per forward pass); None = the engine's own
#: (Embedder.call_size and GPU_BATCH): the first row is what ingestion does on a GPU by default
CONFIGS = [("ingestion's calls on a GPU (Embedder.call_size), default cut", None, None, None),
           ("64 per call (ingestion on a CPU), 32 windows / 16384 tokens (the GPU cut before)", 64, 32, 16384),
           ("512 per call, 32 windows / 16384 tokens", 512, 32, 16384),
           ("2048 per call, 32 windows / 16384 tokens", 2048, 32, 16384),
           ("2048 per call, 128 windows / 65536 tokens", 2048, 128, 65536),
           ("4096 per call, 512 windows / 262144 tokens", 4096, 512, 262144)]


def prepare() -> None:
    from rag.models.e5_convert import converted_model
    from rag.models.e5_torch_embedder import E5TorchEmbedder
    from rag.settings import Settings
    from rag.text import with_lead

    from rag.index import open_store

    if not SOURCE_KB.exists():
        raise SystemExit(f"{SOURCE_KB}: missing; run `make bench` first (it builds the 100k-chunk knowledge base)")
    store = open_store(SOURCE_KB.parent, Settings().with_(backend="local"), dim=0)
    try:
        ids = store.chunk_ids().tolist()
        stored = store.chunks(ids)
    finally:
        store.close()
    rows = [(stored[i].lead, stored[i].text) for i in ids]
    random.Random(0).shuffle(rows)
    texts = [with_lead(a or "", b) for a, b in rows[:N_CHUNKS]]
    folder = converted_model(Settings().model_dir)
    rows_used, rows_all = pack(folder, texts, PACK)
    cpu = E5TorchEmbedder(folder=folder, device="cpu").embed_passages(texts[:N_CHECK])
    np.save(PACK / "cpu_vectors.npy", cpu.astype(np.float32), allow_pickle=False)
    with lzma.open(PACK / "chunks.json.xz", "wt", encoding="utf-8", preset=9) as f:
        json.dump({"texts": texts, "source": str(SOURCE_KB.relative_to(ROOT)), "vocab_rows": rows_used}, f, ensure_ascii=False)
    size = sum(p.stat().st_size for p in PACK.iterdir())
    print(f"{PACK}: {size / 2**20:.1f} MiB ({len(texts)} chunks, {rows_used} of {rows_all} vocabulary rows)")


def pack(folder: Path, texts: list[str], dest: Path) -> tuple[int, int]:
    """Writes into `dest` the converted model in `folder` cut down to what embedding `texts` reads: every
    weight in float16, and of the word embeddings only the rows of the tokens these passages contain."""
    from safetensors.numpy import load_file, save_file
    from tokenizers import Tokenizer

    from rag.models.e5_torch_embedder import PASSAGE_PREFIX

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    used = {tok.token_to_id(t) for t in ("<s>", "</s>", "<unk>")} | {int(config.get("pad_token_id", 1))}
    for enc in tok.encode_batch([PASSAGE_PREFIX + t for t in texts], add_special_tokens=False):
        used.update(enc.ids)
    ids = np.asarray(sorted(used), dtype=np.int32)
    weights = load_file(str(folder / "model.safetensors"))
    packed = {k: v.astype(np.float16) for k, v in weights.items() if k != WORDS}
    packed["word_rows"] = weights[WORDS][ids].astype(np.float16)
    packed["word_ids"] = ids
    dest.mkdir(parents=True, exist_ok=True)
    save_file(packed, str(dest / "weights.safetensors"))
    (dest / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with lzma.open(dest / "tokenizer.json.xz", "wb", preset=9) as f:
        f.write((folder / "tokenizer.json").read_bytes())
    return len(ids), int(weights[WORDS].shape[0])


def rebuild(folder: Path, pack_dir: Path = PACK) -> None:
    """The model folder again from a pack: the full vocabulary, the rows the pack lacks zero."""
    from safetensors.numpy import load_file, save_file

    packed = load_file(str(pack_dir / "weights.safetensors"))
    config = json.loads((pack_dir / "config.json").read_text(encoding="utf-8"))
    words = np.zeros((config["vocab_size"], config["hidden_size"]), dtype=np.float16)
    words[packed.pop("word_ids")] = packed.pop("word_rows")
    folder.mkdir(parents=True, exist_ok=True)
    save_file({**packed, WORDS: words}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with lzma.open(pack_dir / "tokenizer.json.xz", "rb") as f:
        (folder / "tokenizer.json").write_bytes(f.read())


def run(out: Path) -> None:
    import torch

    from rag.models.base import resolve_device
    from rag.models.e5_embedder import E5Embedder, auto_passage_engine
    from rag.models.e5_torch_embedder import E5TorchEmbedder

    folder = Path("/tmp/e5-gpu")
    rebuild(folder)
    with lzma.open(PACK / "chunks.json.xz", "rt", encoding="utf-8") as f:
        texts = json.load(f)["texts"]
    result: dict = {"date": now(),
                    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                    "torch": torch.__version__, "cpu_cores": os.cpu_count(), "chunks": len(texts)}
    e5 = E5Embedder(device="auto")
    result["selection"] = {"resolve_device(auto)": resolve_device("auto"), "auto passage engine": auto_passage_engine(resolve_device("auto")),
                           "e5 passage engine": type(e5.passages).__name__, "e5 passage device": e5.device}
    print(json.dumps(result, indent=1), flush=True)
    engine = E5TorchEmbedder(folder=folder, device="auto")
    t = time.perf_counter()
    engine.warm_up()
    result["load_s"] = time.perf_counter() - t
    result["device"], result["default_cut"] = engine.device, [engine.batch_size, engine.max_batch_tokens]
    want = np.load(PACK / "cpu_vectors.npy")
    got = engine.embed_passages(texts[: len(want)])
    cos = (got * want).sum(1)
    result["cos_to_cpu_fp32"] = {"min": float(cos.min()), "mean": float(cos.mean())}
    tokens = [engine.token_count(x) for x in texts]
    result["tokens_mean"] = float(np.mean(tokens))
    rows = []
    for label, call, batch, max_tokens in CONFIGS:
        e = E5TorchEmbedder(folder=folder, device="auto", batch_size=batch, max_batch_tokens=max_tokens)
        call = call or e.call_size
        e.embed_passages(texts[:call])  # load + warm-up (kernels, allocator)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        for _ in range(REPEAT):
            for i in range(0, len(texts), call):
                e.embed_passages(texts[i : i + call])
        torch.cuda.synchronize()
        seconds = time.perf_counter() - t
        rows.append({"label": label, "call": call, "batch": e.batch_size, "max_tokens": e.max_batch_tokens,
                     "seconds": seconds, "rate": REPEAT * len(texts) / seconds,
                     "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20})
        print(f"{label}: {rows[-1]['rate']:.0f} chunks/s", flush=True)
    result["rows"] = rows
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "gpu.json", result)


def report(path: Path) -> None:
    from rag.eval.report import table

    r = json.loads(path.read_text(encoding="utf-8"))
    write_json(ROOT / "docs" / "gpu.json", r)
    goal = 2000
    best = max(r["rows"], key=lambda x: x["rate"])
    ingest = r["rows"][0]
    lines = ["# GPU rows (issue 19)", "",
             f"Generated by `python scripts/gpu_bench.py report` from a run of `scripts/gpu_bench.py run` on {r['date']} "
             f"on a lent GPU machine ({r['gpu']}, {r['cpu_cores']} CPU cores, torch {r['torch']}). Do not edit by hand. "
             "How the model travelled there and why its vectors are the full model's: the script's docstring.", "",
             "## Device selection", "",
             table(["check", "result"], [[k, f"`{v}`"] for k, v in r["selection"].items()]), "",
             f"The passage engine loaded in {r['load_s']:.1f} s on `{r['device']}` (float16); its vectors against this "
             f"project's CPU machine's float32 vectors of the same {N_CHECK} chunks: cosine min {r['cos_to_cpu_fp32']['min']:.7f}, "
             f"mean {r['cos_to_cpu_fp32']['mean']:.7f}.", "",
             "## Passage embedding throughput", "",
             f"{r['chunks']:,} chunks ({REPEAT} times over) of the 100k-chunk benchmark knowledge base (SciFact and CMRC2018 chunks, "
             f"{r['tokens_mean']:.0f} tokens on average), embedded by `E5TorchEmbedder.embed_passages` on the GPU in calls of "
             "*per call* chunks: tokenising, length-sorted batches cut at *windows* / *tokens*, float16 forward passes, pooling. "
             f"Goal: ≥ {goal:,} chunks/s.", "",
             table(["calls", "per call", "windows", "tokens", "chunks/s", "peak GPU MB"],
                   [[x["label"], x["call"], x["batch"], x["max_tokens"], f"{x['rate']:,.0f}", f"{x['peak_gpu_mb']:,.0f}"]
                    for x in r["rows"]]), "",
             f"At ingestion's call size: {ingest['rate']:,.0f} chunks/s ({'meets' if ingest['rate'] >= goal else 'below'} the goal); "
             f"best: {best['rate']:,.0f} chunks/s ({best['label']}).", "",
             "## The local model on the GPU", "",
             "Not measured: the 1.5B GGUF (1.1 GB) cannot travel to the GPU machine (64 MiB per call, and nothing can be "
             "fetched there), and llama-cpp-python has no CUDA wheel on PyPI: it compiles from source (the CPU build alone "
             "takes about 10 minutes on this project's 2 cores; a CUDA build adds llama.cpp's CUDA kernels), against 15 "
             "minutes of GPU time per task. `llm_gpu_layers` is passed to llama.cpp as "
             "`n_gpu_layers`.", ""]
    write_markdown(ROOT / "docs" / "gpu.md", lines)
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=("prepare", "run", "report"))
    ap.add_argument("path", nargs="?", help="report: the run's gpu.json")
    ap.add_argument("--out", default="gpu-out", help="run: the folder gpu.json is written to (on the device tool: $OUT)")
    args = ap.parse_args()
    if args.step == "prepare":
        prepare()
    elif args.step == "run":
        run(Path(args.out))
    else:
        report(Path(args.path))


if __name__ == "__main__":
    main()
