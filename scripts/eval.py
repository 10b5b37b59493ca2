"""`make eval`: retrieval and answer quality on public benchmarks, side by side with the naive
LangChain pipeline, in one run (writes docs/eval.md, docs/eval.json and docs/eval.png).

Systems (retrieval): naive (RecursiveCharacterTextSplitter 1000/200 + FAISS, same embedder), dense,
hybrid (dense + BM25, reciprocal-rank fusion: the default), hybrid + rerank (when --reranker names
one), RAG-Fusion (hybrid over the question and rewrites by the default generator, on a subsample).
Answers: the default generator through the whole chain (retrieval, gate, prompt, support check),
each item in a knowledge base holding only that item's passages.

Embeddings are cached in .eval-cache/ (SQLite), so a re-run embeds only what is new; generations
are cached per configuration likewise.

    python scripts/eval.py --quick            # minutes to an hour on 2 cores: subsamples
    python scripts/eval.py                    # full sets (hours on 2 CPU cores; use --device cuda)
    python scripts/eval.py --sets scifact,cmrc --embedder e5-torch --device cuda
"""
from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".eval-cache"
sys.path.insert(0, str(ROOT))

from rag import KnowledgeBase, Settings  # noqa: E402
from rag.chain import AnswerChain  # noqa: E402
from rag.eval import datasets  # noqa: E402
from rag.eval.cache import CachingEmbedder  # noqa: E402
from rag.eval.metrics import (all_found_at_k, contains_answer, dedupe, exact_match, f1, ndcg_at_k,  # noqa: E402
                              recall_at_k, reciprocal_rank)
from rag.eval.naive import NaivePipeline  # noqa: E402
from rag.eval.report import machine, read_rows_by_id, table  # noqa: E402
from rag.models.embedder import make_embedder  # noqa: E402
from rag.support import strip_markers  # noqa: E402
from rag.textutil import language_of  # noqa: E402

# (quick, full) sizes
SIZES = {
    "scifact": ({"n_queries": 100, "n_docs": 1000}, {}),
    "cmrc": ({"n_questions": 300, "n_distractors": 300}, {}),
    "hotpot": ({"n_questions": 100}, {}),
    "answers": ({"rgb": 20, "squad": 20, "cmrc": 20}, {"rgb": 100, "squad": 100, "cmrc": 100}),
}
FUSION_QUERIES = (30, 100)  # questions per set that RAG-Fusion (one model call each) is run on
DEPTH = {"SciFact": 200, "CMRC2018": 20, "HotpotQA": 40}  # chunks retrieved, folded to documents

PUBLISHED = {  # from ../shared/data/*/SOURCE.md (full corpora, their own pipelines)
    "SciFact": [("BM25 (Anserini flat)", "0.679", "0.925"), ("BM25 (Anserini multifield)", "0.665", "0.908"),
                ("multilingual-e5-small (MTEB)", "0.676", "0.928"), ("bge-small-en-v1.5 (MTEB)", "0.713", "0.945"),
                ("bge-base-en-v1.5 (Anserini)", "0.741", "0.967")],
}


# ------------------------------------------------------------------ retrieval
def ranked_docs(hits) -> list[str]:
    return dedupe([h.source for h in hits])


def score_set(rset: datasets.RetrievalSet, ranking: dict[str, list[str]]) -> dict[str, float]:
    """The set's metrics over the queries in `ranking` (query id → ranked document ids)."""
    rows = []
    for qid, ranked in ranking.items():
        rel = rset.qrels[qid]
        if rset.name == "SciFact":
            rows.append({"nDCG@10": ndcg_at_k(ranked, rel, 10), "R@100": recall_at_k(ranked, rel, 100)})
        elif rset.name == "CMRC2018":
            rows.append({"R@1": recall_at_k(ranked, rel, 1), "R@5": recall_at_k(ranked, rel, 5),
                         "MRR": reciprocal_rank(ranked, set(rel))})
        else:
            rows.append({"both@10": all_found_at_k(ranked, set(rel), 10), "R@10": recall_at_k(ranked, rel, 10)})
    return {m: statistics.fmean(r[m] for r in rows) for m in rows[0]} if rows else {}


def eval_retrieval(rset: datasets.RetrievalSet, embedder: CachingEmbedder, settings: Settings, args, n_fusion: int) -> dict:
    depth = DEPTH[rset.name]
    docs = list(rset.docs.items())
    out = {"set": rset.name, "note": rset.note, "documents": len(docs), "queries": len(rset.queries), "systems": {}}
    print(f"== {rset.name}: {rset.note}", flush=True)

    def run(system: str, search, queries: dict[str, str]) -> None:
        t = time.perf_counter()
        ranking = {qid: search(q) for qid, q in queries.items()}
        seconds = time.perf_counter() - t
        out["systems"][system] = {"metrics": score_set(rset, ranking), "queries": len(queries),
                                  "ms_per_query": 1000 * seconds / max(1, len(queries))}
        if system in ("hybrid", "fusion"):
            out.setdefault("rankings", {})[system] = ranking
        print(f"   {system:<16} {out['systems'][system]['metrics']}  {out['systems'][system]['ms_per_query']:.0f} ms/q", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        if "naive" in args.systems:
            naive = NaivePipeline(embedder)
            t = time.perf_counter()
            out["naive_chunks"] = naive.index(docs)
            out["naive_index_s"] = time.perf_counter() - t
            run("naive", lambda q: dedupe(naive.search(q, depth)), rset.queries)

        kb = KnowledgeBase(Path(tmp) / "kb", settings, embedder=embedder)
        t = time.perf_counter()
        before = embedder.embedded
        kb.add_texts([text for _, text in docs], sources=[i for i, _ in docs])
        out["chunks"], out["index_s"], out["embedded_now"] = kb.store.counts()[1], time.perf_counter() - t, embedder.embedded - before
        for mode in ("dense", "hybrid"):
            if mode in args.systems:
                run(mode, lambda q, mode=mode: ranked_docs(kb.search(q, k=depth, mode=mode)), rset.queries)
        if args.reranker and "rerank" in args.systems:
            reranked = KnowledgeBase(kb.path, settings.with_(reranker=args.reranker), embedder=embedder)
            subset = dict(list(rset.queries.items())[: args.rerank_queries or None])
            run("hybrid+rerank", lambda q: ranked_docs(reranked.search(q, k=depth)), subset)
            if len(subset) < len(rset.queries):
                run("hybrid (rerank's queries)", lambda q: ranked_docs(kb.search(q, k=depth)), subset)
            reranked.close()
        if "fusion" in args.systems and n_fusion:
            chain = AnswerChain(kb, kb.generator, settings)
            subset = dict(list(rset.queries.items())[:n_fusion])

            def fused(q: str) -> list[str]:
                rewrites = chain.rewrite(q, settings.fusion_queries or 3, language_of(q))
                return ranked_docs(kb.search(q, k=depth, extra_queries=rewrites))

            run("RAG-Fusion", fused, subset)
            run("hybrid (RAG-Fusion's queries)", lambda q: ranked_docs(kb.search(q, k=depth)), subset)
        kb.close()
    out.pop("rankings", None)
    return out


# ------------------------------------------------------------------ answers
def eval_answers(items: list[dict], embedder: CachingEmbedder, settings: Settings) -> list[dict]:
    """Each item asked through the whole chain of a knowledge base holding only its passages."""
    CACHE.mkdir(exist_ok=True)
    config = hashlib.sha1(json.dumps(settings.model_dump(mode="json", exclude={"openai_api_key"}), sort_keys=True).encode()
                          + Path(ROOT / "rag" / "prompts.py").read_bytes() + Path(ROOT / "rag" / "chain.py").read_bytes()).hexdigest()[:10]
    cache_file = CACHE / f"answers-{embedder.name.replace(':', '_').replace('/', '_')}-{config}.jsonl"
    done = read_rows_by_id(cache_file)
    generator = None
    with cache_file.open("a", encoding="utf-8") as log, tempfile.TemporaryDirectory() as tmp:
        for n, item in enumerate(items, 1):
            if item["id"] in done:
                continue
            kb = KnowledgeBase(Path(tmp) / f"kb{n}", settings, embedder=embedder, generator=generator)
            kb.add_texts(item["passages"], sources=[f"passage{i}" for i in range(1, len(item["passages"]) + 1)])
            t = time.perf_counter()
            answer = kb.ask(item["question"])
            generator = kb.generator  # loaded once, shared by the next items
            row = {"id": item["id"], "text": answer.text, "refused": answer.refused, "reason": answer.refusal_reason,
                   "seconds": time.perf_counter() - t, "generator": generator.name}
            kb.close()
            done[item["id"]] = row
            log.write(json.dumps(row, ensure_ascii=False) + "\n")
            log.flush()
            print(f"   [{n}/{len(items)}] {item['id']} {row['seconds']:.1f}s refused={row['refused']} {row['text'][:60]!r}", flush=True)
    return [done[item["id"]] for item in items]


def answer_metrics(items: list[dict], rows: list[dict]) -> dict:
    out: dict = {}
    by_set: dict[str, list[tuple[dict, dict]]] = {}
    for item, row in zip(items, rows):
        by_set.setdefault(item["set"], []).append((item, row))
    for name, pairs in by_set.items():
        def mean(values):
            values = list(values)
            return statistics.fmean(values) if values else float("nan")

        def clean(row: dict) -> str:
            return "" if row["refused"] else strip_markers(row["text"]).strip()

        seconds = statistics.median(r["seconds"] for _, r in pairs)
        if name == "rgb":
            for noise in sorted({i["noise"] for i, _ in pairs}, reverse=True):
                sub = [(i, r) for i, r in pairs if i["noise"] == noise]
                out[f"RGB zh_refine noise {noise}"] = {
                    "items": len(sub), "rejection": mean(r["refused"] for _, r in sub),
                    "accuracy": mean(contains_answer(clean(r), i["answers"]) for i, r in sub),
                    "median s/answer": seconds}
        elif name == "squad2":
            has = [(i, r) for i, r in pairs if i["answerable"]]
            no = [(i, r) for i, r in pairs if not i["answerable"]]
            out["SQuAD2 (CS224N dev)"] = {
                "items": len(pairs), "NoAns accuracy (refused)": mean(r["refused"] for _, r in no),
                "HasAns EM": mean(exact_match(clean(r), i["answers"]) for i, r in has),
                "HasAns F1": mean(f1(clean(r), i["answers"]) for i, r in has),
                "HasAns contains answer": mean(contains_answer(clean(r), i["answers"]) for i, r in has),
                "HasAns refused": mean(r["refused"] for _, r in has), "median s/answer": seconds}
        elif name == "cmrc":
            out["CMRC2018 dev (gold paragraph)"] = {
                "items": len(pairs), "EM": mean(exact_match(clean(r), i["answers"]) for i, r in pairs),
                "F1": mean(f1(clean(r), i["answers"]) for i, r in pairs),
                "contains answer": mean(contains_answer(clean(r), i["answers"]) for i, r in pairs),
                "refused": mean(r["refused"] for _, r in pairs), "median s/answer": seconds}
    return out


# ------------------------------------------------------------------ report
def write(results: dict, args) -> None:
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "eval.json").write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    lines = [
        "# Retrieval and answer quality",
        "",
        f"Generated by `{results['command']}` on {results['date']} at commit {results.get('commit', '?')} ({results['machine']}). "
        f"Embedder `{results['embedder']}`, generator `{results['generator']}`; {results['profile']} profile. "
        "Do not edit by hand: re-run the command.",
        "",
        "Systems, all in the same run with the same embedder: **naive** = the LangChain tutorial pipeline "
        "(RecursiveCharacterTextSplitter 1000/200 characters, FAISS.from_documents, similarity_search); "
        "**dense** = our chunks (256 tokens) and FAISS; **hybrid** = dense + BM25 (jieba / Snowball terms) fused by "
        "reciprocal rank (the default); **RAG-Fusion** = hybrid over the question plus 3 rewrites by the default "
        "generator, on the first questions of the set (with hybrid on the same questions beside it). "
        "Chunk results are folded to their document (first occurrence). Query embeddings come from the evaluation's "
        "cache, so *ms/query* is the search alone (for ours: BM25, FAISS, fusion and reading the passages from SQLite; "
        "for naive: FAISS in memory), measured on a shared, loaded machine; `make bench` measures latency properly.",
        "",
    ]
    for r in results["retrieval"]:
        metrics = list(next(iter(r["systems"].values()))["metrics"])
        lines += [f"## {r['set']}", "", r["note"] + f"; our index: {r.get('chunks', '?')} chunks"
                  + (f", naive: {r['naive_chunks']} chunks" if "naive_chunks" in r else "") + ".", ""]
        rows = [[name, s["queries"], *[f"{s['metrics'][m]:.3f}" for m in metrics], f"{s['ms_per_query']:.0f}"]
                for name, s in r["systems"].items()]
        lines += [table(["system", "queries", *metrics, "ms/query"], rows), ""]
        if r["set"] in PUBLISHED:
            lines += ["Published on the full corpus (../shared/data/beir_scifact/SOURCE.md), for orientation"
                      + (" — our run used a corpus subset, which scores higher" if "subset" in r["note"] else "") + ":", "",
                      table(["system", "nDCG@10", "R@100"], [list(p) for p in PUBLISHED[r["set"]]]), ""]
    if results.get("answers"):
        lines += ["## Answers with the default generator", "",
                  "Each item is asked through the whole chain (hybrid retrieval, score gate, prompt, citations, support "
                  "check) of a knowledge base holding only that item's passages. A refusal counts as an empty answer. "
                  "Generated answers are sentences, so EM is low by construction; 'contains answer' (RGB's rule) is "
                  "the fairer accuracy.", ""]
        for name, m in results["answers"].items():
            lines += [f"**{name}**", "", table(["metric", "value"],
                                               [[k, f"{v:.3f}" if isinstance(v, float) else v] for k, v in m.items()]), ""]
    if results.get("plot"):
        lines += ["## Overview", "", f"![retrieval quality by system]({results['plot']})", ""]
    lines += ["## Timings", "", table(["set", "documents", "chunks (ours)", "indexing s (ours)", "texts embedded in this run"],
                                      [[r["set"], r["documents"], r.get("chunks", ""), f"{r.get('index_s', 0):.0f}", r.get("embedded_now", "")]
                                       for r in results["retrieval"]]), ""]
    (docs / "eval.md").write_text("\n".join(lines), encoding="utf-8")


def plot(results: dict) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    main = {"SciFact": "nDCG@10", "CMRC2018": "R@5", "HotpotQA": "both@10"}
    sets = [r for r in results["retrieval"] if r["systems"]]
    if not sets:
        return None
    systems = [s for s in ("naive", "dense", "hybrid", "hybrid+rerank") if any(s in r["systems"] for r in sets)]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(systems)
    for k, system in enumerate(systems):
        values = [r["systems"].get(system, {}).get("metrics", {}).get(main[r["set"]], 0) for r in sets]
        bars = ax.bar([i + k * width for i in range(len(sets))], values, width, label=system)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(sets))])
    ax.set_xticklabels([f"{r['set']}\n{main[r['set']]}" for r in sets])
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Retrieval quality (same embedder for every system)")
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "eval.png", dpi=120)
    return "eval.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="subsamples (minutes to an hour on 2 cores)")
    parser.add_argument("--sets", default="scifact,cmrc,hotpot,answers")
    parser.add_argument("--systems", default="naive,dense,hybrid,rerank,fusion")
    parser.add_argument("--embedder", default=None, help="embedder spec (default: Settings)")
    parser.add_argument("--device", default=None, help="cpu / cuda (default: Settings, i.e. auto)")
    parser.add_argument("--reranker", default="", help="e.g. cross-encoder:BAAI/bge-reranker-v2-m3 or llm")
    parser.add_argument("--rerank-queries", type=int, default=0, help="rerank only the first N queries (0 = all)")
    parser.add_argument("--no-fusion", action="store_true")
    parser.add_argument("--answers", type=int, default=0, help="items per answer set (default: the profile's)")
    parser.add_argument("--report-only", action="store_true", help="rewrite docs/eval.md and the plot from docs/eval.json")
    args = parser.parse_args()
    args.systems = args.systems.split(",")
    if args.report_only:
        results = json.loads((ROOT / "docs" / "eval.json").read_text(encoding="utf-8"))
        results["plot"] = plot(results)
        write(results, args)
        return
    profile = 0 if args.quick else 1

    settings = Settings()
    if args.embedder:
        settings = settings.with_(embedder=args.embedder)
    if args.device:
        settings = settings.with_(device=args.device)
    embedder = CachingEmbedder(make_embedder(settings), CACHE)
    results = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(settings.device),
               "embedder": embedder.name, "generator": settings.generator, "profile": "quick" if args.quick else "full",
               "command": "make eval" + (" QUICK=1" if args.quick else ""), "retrieval": [], "answers": {}}
    previous = ROOT / "docs" / "eval.json"
    if previous.exists():  # a run of some sets keeps the other sets' results of the same profile
        old = json.loads(previous.read_text(encoding="utf-8"))
        if old.get("profile") == results["profile"] and old.get("embedder") == results["embedder"]:
            names = {"scifact": "SciFact", "cmrc": "CMRC2018", "hotpot": "HotpotQA"}
            rerun = {names[s] for s in args.sets.split(",") if s in names}
            results["retrieval"] = [r for r in old.get("retrieval", []) if r["set"] not in rerun]
            if "answers" not in args.sets.split(","):
                results["answers"] = old.get("answers", {})
    results["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                       cwd=ROOT).stdout.strip()
    n_fusion = 0 if args.no_fusion else FUSION_QUERIES[profile]
    loaders = {"scifact": lambda: datasets.scifact("test", **SIZES["scifact"][profile]),
               "cmrc": lambda: datasets.cmrc("dev", **SIZES["cmrc"][profile]),
               "hotpot": lambda: datasets.hotpotqa(**SIZES["hotpot"][profile])}
    sets = args.sets.split(",")
    for name in [s for s in sets if s in loaders]:
        rset = loaders[name]()
        if name == "hotpot" and args.quick:  # quick: only the paragraphs of the chosen questions
            keep = {d for q in rset.queries for d in rset.qrels[q]}
            rows = [json.loads(line) for line in (datasets.SHARED / "hotpotqa_ircot_dev500" / "dev_subsampled.jsonl").open(encoding="utf-8")]
            texts = {f"{c['title']}\n{c['paragraph_text']}".strip() for row in rows if row["question_id"] in rset.queries for c in row["contexts"]}
            rset.docs = {d: t for d, t in rset.docs.items() if t in texts or d in keep}
            rset.note = f"{len(rset.queries)} of 500 questions; corpus = their {len(rset.docs)} paragraphs (supporting + distractors)"
        results["retrieval"].append(eval_retrieval(rset, embedder, settings, args, n_fusion))
        write(results, args)
    if "answers" in sets:
        sizes = {k: args.answers for k in SIZES["answers"][profile]} if args.answers else SIZES["answers"][profile]
        items = datasets.rgb_items(sizes["rgb"]) + datasets.squad_items(sizes["squad"]) + datasets.cmrc_items(sizes["cmrc"])
        print(f"== answers: {len(items)} items", flush=True)
        rows = eval_answers(items, embedder, settings)
        results["answers"] = answer_metrics(items, rows)
        results["generator"] = rows[0]["generator"] if rows else settings.generator
    results["plot"] = plot(results)
    write(results, args)
    print((ROOT / "docs" / "eval.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
