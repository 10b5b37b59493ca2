"""`make bench-milvus` (also run by `make bench`): the local backend and Milvus side by side (writes
docs/milvus.md and docs/milvus.json; docs/scale.md is then written from them by scripts/scale_plan.py).

For each size (default 10k and 100k chunks) and backend (local = SQLite + FAISS + bm25s; milvus =
milvus-lite 3.2.2 in the process, the engine a file URI opens), in its own process:
  * ingest rate: the chunks written with their vectors (embedding excluded: the same for both), in
    documents of 1,000 chunks, until searchable (local: SQLite rows, then FAISS and BM25 built;
    milvus: inserts with Milvus's BM25 function, then flush);
  * query latency p50 / p95 over 200 real questions (100 SciFact, 100 CMRC2018), k = 10, for dense,
    keyword (BM25) and hybrid; the question vectors are embedded before the clock (cached), so the
    numbers are the store's alone;
  * dense top-10 agreement with the local backend on the same question vectors, the RSS a fresh
    process gains by opening and searching it, and bytes on disk per chunk (and per file).
The chunks are those of `make bench` (real SciFact / CRUD-RAG / CMRC texts; vectors mixed from 2,000
real e5 passage vectors, scripts/bench.py). milvus-lite is Milvus's pure-Python engine for development:
its speed is not a Milvus server's; the columns show what the same code does on each, and the server
path is tested (tests/contract/test_kb_backends.py) but not timed here.

Also timed: many small documents through `kb.add_texts` (the first --text-docs SciFact abstracts, vectors
cached), the public ingest path, on each backend.

`--quality scifact,cmrc` (run by `make eval`; not timed): SciFact (full corpus, 300 test claims) and
CMRC2018 (make eval's quick set) through `kb.add_texts` + `kb.search` on both backends with the same
embedder, dense and hybrid, ranked and scored as scripts/eval.py does; each metric's mean with its 95%
interval and the paired difference Milvus - local with a 95% bootstrap interval. Each part keeps the
other parts' results in docs/milvus.json.

    python scripts/bench_milvus.py [--sizes 10000,100000] [--questions 200] [--text-docs 2000]
    python scripts/bench_milvus.py --quality scifact,cmrc
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".eval-cache"

import numpy as np

from rag.eval.report import load_average, machine, memory_mb, now, table, write_json, write_markdown
from rag.settings import Settings

BACKENDS = ("local", "milvus")
PER_DOC = 1000


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def settings_for(backend: str, folder: Path) -> Settings:
    settings = Settings()
    if backend == "milvus":
        return settings.with_(backend="milvus", milvus_uri=str(folder / "milvus.db"), milvus_collection="bench")
    return settings.with_(backend="local")


def build(backend: str, folder: Path, size: int) -> dict:
    """Write `size` chunks into a fresh knowledge base on `backend`; seconds until searchable."""
    from bench import base_texts

    from rag.eval.bench import mixed, synthetic_kb
    from rag.eval.cache import CachingEmbedder
    from rag.index.records import EmbeddedDoc
    from rag.kb import KnowledgeBase
    from rag.models.registry import make_embedder
    from rag.terms import terms
    from rag.types import Chunk, Page

    settings = settings_for(backend, folder)
    texts = base_texts(20000)
    embedder = CachingEmbedder(make_embedder(settings), CACHE)
    vectors = embedder.embed_passages(texts[:2000])
    if backend == "local":
        t = time.perf_counter()
        term_lists = [terms(x) for x in texts]  # the local backend's tokenising is part of its ingest
        terms_s = time.perf_counter() - t
        info = synthetic_kb(folder, size, settings, texts, term_lists, vectors, per_doc=PER_DOC, embedder=embedder)
        embedder.close()
        # each chunk is tokenised once in a real ingest (the synthetic one reuses the 20k texts' terms)
        return {"ingest_s": terms_s * size / len(texts) + info["write_s"] + info["index_s"], "kind": info["kind"]}
    kb = KnowledgeBase(folder, settings, embedder=embedder)
    rng = np.random.default_rng(0)  # the same vectors as synthetic_kb draws
    t = time.perf_counter()
    with kb.index.writing():
        for d in range(0, size, PER_DOC):
            rows = np.arange(d, min(size, d + PER_DOC))
            chunk_texts = [texts[i % len(texts)] for i in rows]
            kb.index.commit_many([EmbeddedDoc(f"doc{d // PER_DOC}.txt", f"{d:064x}"[-64:], 0, [Page(1, "\n".join(chunk_texts[:3]))],
                                              [Chunk(x, 1, 0, len(x)) for x in chunk_texts], mixed(vectors, rows, rng), None)])
        kb.index.flush()
    seconds = time.perf_counter() - t
    kind = kb.index.vector_kind
    kb.close()
    embedder.close()
    return {"ingest_s": seconds, "kind": kind}


def parts(folder: Path) -> dict:
    """Bytes on disk of each top-level entry of the knowledge-base folder (SQLite, FAISS, BM25 folder, milvus.db)."""
    return {p.name: (folder_bytes(p) if p.is_dir() else p.stat().st_size) for p in sorted(Path(folder).iterdir())}


def child_build(backend: str, size: int, folder: str) -> dict:
    built = build(backend, Path(folder), size)
    return {**built, "disk_bytes_per_chunk": folder_bytes(Path(folder)) / size,
            "disk_parts_bytes": parts(Path(folder))}


def child_measure(backend: str, folder: str, n_questions: int) -> dict:
    """Open the built knowledge base in a fresh process, as a serving process would, and time queries."""
    from bench import questions

    from rag.eval.bench import latency
    from rag.eval.cache import CachingEmbedder
    from rag.kb import KnowledgeBase
    from rag.models.registry import make_embedder

    folder = Path(folder)
    settings = settings_for(backend, folder)
    embedder = CachingEmbedder(make_embedder(settings), CACHE)
    qs = questions(n_questions)
    before = memory_mb()
    kb = KnowledgeBase(folder, settings, embedder=embedder)
    qvecs = np.stack([kb.retriever.embed_query(q) for q in qs])  # embedded before the clock
    kb.search("warm up", k=10)
    result = {"rss_kb_mb": memory_mb() - before}
    for mode in ("dense", "keyword", "hybrid"):
        result[mode] = latency(lambda q, mode=mode: kb.search(q, k=10, mode=mode), qs)
    _, ids = kb.index.dense(qvecs, 10)
    result["dense_top10"] = ids.tolist()
    kb.close()
    embedder.close()
    return result


def child_texts(backend: str, n_docs: int, folder: str) -> dict:
    """Documents per second through `kb.add_texts` (the public path: split, cached vectors, one document
    record each): the first `n_docs` SciFact abstracts into a fresh knowledge base."""
    from rag.eval import datasets
    from rag.eval.cache import CachingEmbedder
    from rag.kb import KnowledgeBase
    from rag.models.registry import make_embedder

    folder = Path(folder)
    settings = settings_for(backend, folder)
    embedder = CachingEmbedder(make_embedder(settings), CACHE)
    docs = list(datasets.scifact("test").docs.items())[:n_docs]
    kb = KnowledgeBase(folder, settings, embedder=embedder)
    t = time.perf_counter()
    report = kb.add_texts([text for _, text in docs], sources=[i for i, _ in docs])
    seconds = time.perf_counter() - t
    kb.close()
    embedder.close()
    return {"backend": backend, "docs": len(docs), "chunks": report.chunks, "seconds": seconds,
            "embedded": embedder.embedded, "docs_per_s": len(docs) / seconds, "chunks_per_s": report.chunks / seconds}


QUALITY_SETS = ("scifact", "cmrc")


def load_quality_set(name: str):
    """SciFact: the full corpus and its 300 test claims; CMRC2018: make eval's quick set (scripts/eval.py SIZES)."""
    from eval import SIZES

    from rag.eval import datasets

    return datasets.scifact("test") if name == "scifact" else datasets.cmrc("dev", **SIZES["cmrc"][0])


def quality_run(name: str, backend: str, folder: Path) -> dict:
    """Per-query metrics of one set on one backend, through kb.add_texts and kb.search (dense and hybrid),
    ranked and scored as make eval does (scripts/eval.py: DEPTH chunks folded to documents)."""
    from eval import DEPTH, ranked_docs

    from rag.eval.cache import CachingEmbedder
    from rag.eval.metrics import retrieval_metrics
    from rag.kb import KnowledgeBase
    from rag.models.registry import make_embedder

    rset = load_quality_set(name)
    settings = settings_for(backend, folder)
    embedder = CachingEmbedder(make_embedder(settings), CACHE)
    kb = KnowledgeBase(folder, settings, embedder=embedder)
    t = time.perf_counter()
    kb.add_texts(list(rset.docs.values()), sources=list(rset.docs))
    out = {"set": rset.name, "note": rset.note, "documents": len(rset.docs), "queries": len(rset.queries),
           "chunks": kb.index.counts()[1], "add_texts_s": time.perf_counter() - t, "embedded": embedder.embedded, "modes": {}}
    for mode in ("dense", "hybrid"):
        t = time.perf_counter()
        per = [retrieval_metrics(rset.name, ranked_docs(kb.search(q, k=DEPTH[rset.name], mode=mode)), rset.qrels[qid])
               for qid, q in rset.queries.items()]
        out["modes"][mode] = {"ms_per_query": 1000 * (time.perf_counter() - t) / len(per),
                              "per_query": {m: [r[m] for r in per] for m in per[0]}}
    kb.close()
    embedder.close()
    return out


def quality(sets: list[str]) -> dict:
    """Each set on both backends: every metric's mean with its 95% interval, and the paired difference
    milvus - local with its 95% bootstrap interval over the same queries."""
    import tempfile

    from rag.eval.answers import mean_ci
    from rag.eval.metrics import paired_bootstrap

    out = []
    for name in sets:
        with tempfile.TemporaryDirectory(prefix=f"milvus-quality-{name}-") as tmp:
            runs = {b: quality_run(name, b, Path(tmp) / b) for b in BACKENDS}
        local, milvus = runs["local"], runs["milvus"]
        rows = []
        for mode in local["modes"]:
            for metric, a in local["modes"][mode]["per_query"].items():
                b = milvus["modes"][mode]["per_query"][metric]
                d, lo, hi = paired_bootstrap(a, b)
                rows.append({"mode": mode, "metric": metric, "local": mean_ci(a), "milvus": mean_ci(b),
                             "delta": d, "delta_ci95": [lo, hi], "queries_differing": sum(x != y for x, y in zip(a, b))})
        entry = {k: local[k] for k in ("set", "note", "documents", "queries")}
        entry["backends"] = {bk: {"chunks": r["chunks"], "add_texts_s": r["add_texts_s"], "embedded": r["embedded"],
                                  "ms_per_query": {m: v["ms_per_query"] for m, v in r["modes"].items()}}
                             for bk, r in runs.items()}
        entry["rows"] = rows
        out.append(entry)
        print(json.dumps({**entry, "rows": [{k: v for k, v in r.items()} for r in rows]}), flush=True)
    return {"date": _now(), "load_before": list(load_average()), "sets": out}


def texts_rate(backend: str, n_docs: int) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory(prefix=f"milvus-texts-{backend}-") as tmp:
        return run_child("texts", backend, str(n_docs), str(Path(tmp) / "kb"))


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"bench child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(backend: str, size: int, n_questions: int) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory(prefix=f"milvus-bench-{backend}-{size}-") as tmp:
        folder = str(Path(tmp) / "kb")
        built = run_child("build", backend, str(size), folder)
        measured = run_child("measure", backend, folder, str(n_questions))
    return {"backend": backend, "size": size, "date": _now(), **built, "chunks_per_s": size / built["ingest_s"], **measured}


def write(results: dict) -> None:
    docs = ROOT / "docs"
    write_json(docs / "milvus.json", results, indent=2)
    lines = ["# Local backend and Milvus side by side", "",
             f"Generated by `make bench-milvus` on {results['date']} ({results['machine']}; load average before "
             f"{', '.join(f'{x:.2f}' for x in results.get('load_before', []))}); embedder `{results['embedder']}`. "
             "Do not edit by hand: re-run the command. How it is measured: the docstring of scripts/bench_milvus.py. "
             f"Milvus here is milvus-lite {results.get('milvus_lite', '?')} in the process (Python engine; BM25 analyzer "
             f"`{results.get('analyzer')}`), not a Milvus server: its times say what the development engine does, and "
             "docs/scale.md says what a cluster needs.", "",
             "Latency is the store's alone (question vectors cached), k = 10, p50 / p95 in ms. *dense top-10 agreement*: "
             "the mean share of the local backend's dense top-10 that Milvus also returns, on the same question vectors.", ""]
    rows = []
    for r in results["rows"]:
        rows.append([f"{r['size']:,}", r["backend"], r["kind"], f"{r['chunks_per_s']:.0f}",
                     *[f"{r[m]['p50_ms']:.1f} / {r[m]['p95_ms']:.1f}" for m in ("dense", "keyword", "hybrid")],
                     f"{r['rss_kb_mb']:.0f}", f"{r['disk_bytes_per_chunk']:.0f}",
                     f"{r['agreement']:.3f}" if "agreement" in r else "—"])
    runs = {r["size"]: r for r in results["rows"] if "date" in r}
    if runs:
        lines += ["Each size was measured in its own run: " + "; ".join(
            f"{size:,} chunks on {r['date']} (load average before {', '.join(f'{x:.2f}' for x in r.get('load_before', []))})"
            for size, r in sorted(runs.items())) + ".", ""]
    lines += [table(["chunks", "backend", "vector index", "ingest chunks/s", "dense ms", "keyword ms", "hybrid ms",
                     "RSS added by opening MB", "disk bytes / chunk", "dense top-10 agreement"], rows), ""]
    if results.get("texts"):
        lines += ["## Ingest through `kb.add_texts`", "",
                  "Many small documents through the public path (split, vectors from the embedding cache, so embedding "
                  "costs nothing here; one record per document): the first SciFact abstracts into a fresh knowledge base. "
                  f"Milvus writes the documents of up to {results.get('commit_rows', 0):,} chunks (MilvusStore.commit_rows) "
                  "in one bulk write and commits them in one upsert.", "",
                  table(["backend", "documents", "chunks", "seconds", "documents/s", "chunks/s"],
                        [[t["backend"], f"{t['docs']:,}", f"{t['chunks']:,}", f"{t['seconds']:.1f}", f"{t['docs_per_s']:.0f}",
                          f"{t['chunks_per_s']:.0f}"] for t in results["texts"]]), ""]
    q = results.get("quality")
    if q:
        def ci(m: dict) -> str:
            return f"{m['mean']:.3f} [{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]"

        lines += ["## Retrieval quality: the same knowledge base on each backend", "",
                  f"Generated by `python scripts/bench_milvus.py --quality` on {q['date']} (load average before "
                  f"{', '.join(f'{x:.2f}' for x in q['load_before'])}; quality is not timed). Each set goes through "
                  "`kb.add_texts` and `kb.search` on the local backend and on milvus-lite with the same embedder and "
                  "cached vectors, ranked and scored as `make eval` does (chunks folded to documents). Means with 95% "
                  "intervals; Δ = Milvus − local, paired over the same queries, with a 95% bootstrap interval; "
                  "*queries differing*: how many queries score differently at all. Neither store is the other: Milvus's "
                  "AUTOINDEX is an HNSW graph in milvus-lite (approximate; the local backend searches these sizes exactly, "
                  "see the dense top-10 agreement above). Both BM25 indexes read the same rag.terms (Snowball stems, stop "
                  "words dropped, jieba words): Milvus's BM25 function is given them as its text, and the question as "
                  "terms too, because milvus-lite's own analyzer does not stem.", ""]
        rows = []
        for entry in q["sets"]:
            for r in entry["rows"]:
                rows.append([entry["set"], r["mode"], r["metric"], ci(r["local"]), ci(r["milvus"]),
                             f"{r['delta']:+.3f} [{r['delta_ci95'][0]:+.3f}, {r['delta_ci95'][1]:+.3f}]",
                             f"{r['queries_differing']} / {entry['queries']}"])
        lines += [table(["set", "mode", "metric", "local", "Milvus", "Δ Milvus − local", "queries differing"], rows), ""]
        lines += [f"- {e['set']}: {e['note']}; " + "; ".join(
            f"{b} {v['chunks']:,} chunks, add_texts {v['add_texts_s']:.0f} s, "
            f"{v['ms_per_query']['dense']:.0f} / {v['ms_per_query']['hybrid']:.0f} ms per dense / hybrid query"
            for b, v in e["backends"].items()) for e in q["sets"]]
        lines += [""]
    write_markdown(docs / "milvus.md", lines)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, backend, a, b = sys.argv[2:6]
        result = (child_build(backend, int(a), b) if kind == "build" else child_texts(backend, int(a), b)
                  if kind == "texts" else child_measure(backend, a, int(b)))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="chunks per knowledge base ('' = none)")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--text-docs", type=int, default=2000, help="SciFact abstracts through kb.add_texts (0 = skip)")
    parser.add_argument("--only-texts", action="store_true", help="print the kb.add_texts rates and stop")
    parser.add_argument("--quality", default="", help=f"instead of timing: retrieval quality on both backends, of "
                        f"{','.join(QUALITY_SETS)} (not timed; the timed results already in docs/milvus.json are kept)")
    parser.add_argument("--report-only", action="store_true", help="rewrite docs/milvus.md from docs/milvus.json")
    args = parser.parse_args()
    if args.report_only:
        write(json.loads((ROOT / "docs" / "milvus.json").read_text(encoding="utf-8")))
        return
    import milvus_lite

    from rag.index.milvus.store import ANALYZER, MilvusStore

    path = ROOT / "docs" / "milvus.json"
    kept = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if args.quality:
        results = {**kept, "quality": quality([x for x in args.quality.split(",") if x])}
        write(results)
        print((ROOT / "docs" / "milvus.md").read_text(encoding="utf-8"))
        return
    settings = Settings()
    sizes = [int(x) for x in args.sizes.split(",") if x]
    results = {"date": _now(), "machine": machine(settings.device), "load_before": list(load_average()),
               "embedder": settings.embedder, "milvus_lite": getattr(milvus_lite, "__version__", "?"),
               "analyzer": ANALYZER, "commit_rows": MilvusStore.commit_rows, "rows": [r for r in kept.get("rows", []) if r["size"] not in sizes]}
    for key in ("texts", "quality"):  # kept from earlier runs unless re-measured below
        if kept.get(key):
            results[key] = kept[key]
    if args.text_docs:
        results["texts"] = [texts_rate(b, args.text_docs) for b in BACKENDS]
        print(*map(json.dumps, results["texts"]), sep="\n", flush=True)
        if args.only_texts:
            return
    from rag.eval.bench import overlap_at_k

    for size in sizes:
        local = measure("local", size, args.questions)
        milvus = measure("milvus", size, args.questions)
        local["load_before"] = milvus["load_before"] = results["load_before"]
        milvus["agreement"] = overlap_at_k(np.array(local.pop("dense_top10")), np.array(milvus.pop("dense_top10")), 10)
        results["rows"] = sorted([*results["rows"], local, milvus], key=lambda r: (r["size"], r["backend"]))
        print(json.dumps(local), json.dumps(milvus), sep="\n", flush=True)
        write(results)
    write(results)
    print((ROOT / "docs" / "milvus.md").read_text(encoding="utf-8"))


def _now() -> str:
    return now()


if __name__ == "__main__":
    main()
