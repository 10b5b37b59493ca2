"""`make eval`: retrieval and answer quality on public benchmarks, side by side with the naive
LangChain pipeline, in one run (writes docs/eval.md, docs/eval.json and docs/eval.png for the quick
profile; the full sets write docs/eval_full.* so both stand side by side).

Systems (retrieval): naive (RecursiveCharacterTextSplitter 1000/200 + FAISS, same embedder), dense,
hybrid (dense + BM25, reciprocal-rank fusion: the default), hybrid + rerank (when --reranker names
one), RAG-Fusion (hybrid over the question and rewrites by the default generator, on a subsample).
Answers (rag/eval/answers.py): the sample questions, SQuAD2 (whole articles), RGB zh_refine (noise 1.0
and 0.4) and CMRC2018, through our chain with each generator named in --answer-systems and through
the naive LangChain "stuff" chain with the same model.

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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".eval-cache"

import refusal_page
from rag import KnowledgeBase, Settings
from rag.settings import ANSWER_FIELDS
from rag.answer.chain import AnswerChain
from rag.eval import answers as answers_eval
from rag.eval import datasets
from rag.eval.cache import CachingEmbedder
from rag.eval.metrics import dedupe, retrieval_metrics
from rag.eval.naive import NaivePipeline
from rag.eval.report import machine, now, table, write_json, write_markdown
from rag.models.registry import make_embedder
from rag.text import language_of

# (quick, full) sizes
SIZES = {
    "scifact": ({"n_queries": 100, "n_docs": 1000}, {}),
    "cmrc": ({"n_questions": 300, "n_distractors": 300}, {}),
    "hotpot": ({"n_questions": 100}, {}),
    "answers": (20, 100),  # items per answer set (SQuAD2: this many answerable and unanswerable; RGB: per noise level)
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
    rows = [retrieval_metrics(rset.name, ranked, rset.qrels[qid]) for qid, ranked in ranking.items()]
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
        out["chunks"], out["index_s"], out["embedded_now"] = kb.index.counts()[1], time.perf_counter() - t, embedder.embedded - before
        for mode in ("dense", "hybrid"):
            if mode in args.systems:
                run(mode, lambda q, mode=mode: ranked_docs(kb.search(q, k=depth, mode=mode)), rset.queries)
        if args.compare:  # the same run with some settings changed, e.g. the defaults before a change
            other = KnowledgeBase(Path(tmp) / "kb-compare", settings.with_(**args.compare), embedder=embedder)
            other.add_texts([text for _, text in docs], sources=[i for i, _ in docs])
            name = "hybrid, " + ", ".join(f"{k}={v}" for k, v in args.compare.items())
            run(name, lambda q: ranked_docs(other.search(q, k=depth, mode="hybrid")), rset.queries)
            other.close()
        if args.reranker and "rerank" in args.systems:
            reranked = KnowledgeBase(kb.path, settings.with_(reranker=args.reranker), embedder=embedder)
            subset = dict(list(rset.queries.items())[: args.rerank_queries or None])
            run("hybrid+rerank", lambda q: ranked_docs(reranked.search(q, k=depth)), subset)
            if len(subset) < len(rset.queries):
                run("hybrid (rerank's queries)", lambda q: ranked_docs(kb.search(q, k=depth)), subset)
            reranked.close()
        if "fusion" in args.systems and n_fusion:
            chain = AnswerChain(kb.retriever, kb.generator, settings)
            subset = dict(list(rset.queries.items())[:n_fusion])

            def fused(q: str) -> list[str]:
                rewrites = chain.rewrite(q, settings.fusion_queries or 3, language_of(q))
                return ranked_docs(kb.search(q, k=depth, extra_queries=rewrites))

            run("RAG-Fusion", fused, subset)
            run("hybrid (RAG-Fusion's queries)", lambda q: ranked_docs(kb.search(q, k=depth)), subset)
        kb.close()
        if "milvus" in args.systems:  # the same chunks and vectors on the Milvus backend (milvus-lite, issue 20)
            mkb = KnowledgeBase(Path(tmp) / "milvus-kb", settings.with_(backend="milvus", milvus_collection="eval",
                                                                        milvus_uri=str(Path(tmp) / "milvus.db")), embedder=embedder)
            t = time.perf_counter()
            mkb.add_texts([text for _, text in docs], sources=[i for i, _ in docs])
            out["milvus_chunks"], out["milvus_index_s"] = mkb.index.counts()[1], time.perf_counter() - t
            for mode in ("dense", "hybrid"):
                if mode in args.systems:
                    run(f"milvus {mode}", lambda q, mode=mode: ranked_docs(mkb.search(q, k=depth, mode=mode)), rset.queries)
            mkb.close()
    out.pop("rankings", None)
    return out


# ------------------------------------------------------------------ answers
ANSWER_SETS = ("sample", "squad2", "rgb", "cmrc", "cmrc-hant")


def answer_items(sets: list[str], n: int) -> dict[str, list[dict]]:
    """The answer sets' items: `n` per set (SQuAD2: n answerable + n unanswerable, from the `test` articles of
    split.json only, since the answerability probe learned from the `train` ones; RGB: n questions at noise 1.0
    and the same n at 0.4), drawn with a fixed seed. cmrc-hant: the CMRC2018 items in Traditional Chinese (OpenCC)."""
    loaders = {"sample": lambda: datasets.sample_items(ROOT), "squad2": lambda: datasets.squad_items(n, articles="test"),
               "rgb": lambda: datasets.rgb_items(n), "cmrc": lambda: datasets.cmrc_items(n),
               "cmrc-hant": lambda: datasets.traditional(datasets.cmrc_items(n))}
    out: dict[str, list[dict]] = {}
    for name in sets:
        for item in loaders[name]():
            out.setdefault(item["set"], []).append(item)
    return out


def _config_hash(settings: Settings, spec: str) -> str:
    # what decides an answer: the answer code, the text helpers, and the answerability probe with the code reading it
    decides = sorted((ROOT / "rag" / "answer").glob("*.py")) + [ROOT / "rag" / "text.py", ROOT / "rag" / "models" / "probe.py",
                                                               ROOT / "rag" / "models" / "llamacpp.py"]
    probe = ROOT / "rag" / "data" / "answerability_probe.json"
    code = b"".join(p.read_bytes() for p in decides + ([probe] if probe.exists() else []))
    blob = json.dumps(settings.model_dump(mode="json", exclude={"openai_api_key"}), sort_keys=True).encode() + spec.encode() + code
    return hashlib.sha1(blob).hexdigest()[:10]


def first_of_each_kind(by_set: dict[str, list[dict]], n: int) -> dict[str, list[dict]]:
    """The first n answerable and first n unanswerable items of each set."""
    return {name: [i for i in items if i["answerable"]][:n] + [i for i in items if not i["answerable"]][:n]
            for name, items in by_set.items()}


def eval_answers(by_set: dict[str, list[dict]], embedder: CachingEmbedder, settings: Settings, systems: list[str],
                 naive_items: int = 0, scores: dict | None = None) -> dict:
    """Each system ("chain:<generator>" = ours, "naive:<generator>" = the anchor) on every set; rows cached
    in .eval-cache/ by configuration, so a re-run only asks what is new. `scores` receives the default chain's
    answerability scores and outcomes per set (docs/refusal.md)."""
    from rag.eval import answers
    from rag.models.registry import make_generator

    out: dict = {}
    generators: dict = {}
    for system in systems:
        kind, _, spec = system.partition(":")
        # "rules:<generator>" = our chain with the answerability probe off: the rules alone, as before issue 31
        run_settings = settings.with_(answerability_probe="off") if kind == "rules" else settings
        kind = "chain" if kind == "rules" else kind
        sets = first_of_each_kind(by_set, naive_items) if kind == "naive" and naive_items else by_set
        items = [i for rows in sets.values() for i in rows]
        spec = spec or settings.generator
        if spec not in generators:
            generators[spec] = make_generator(settings.with_(generator=spec))
            generators[spec].warm_up()
        generator = generators[spec]
        # answer settings changed from their defaults (e.g. RAG_MAX_CONTEXT_TOKENS=640) are part of the row's name
        changed = [f"{k}={getattr(settings, k)}" for k in ANSWER_FIELDS
                   if k != "generator" and getattr(settings, k) != Settings.model_fields[k].default] if kind == "chain" else []
        name = (f"{'ours' if kind == 'chain' else 'naive LangChain'} · {generator.name}" + "".join(f" · {c}" for c in changed)
                + (" · rules alone (no answerability score)" if run_settings is not settings else ""))
        print(f"== answers: {name}, {len(items)} items", flush=True)
        if kind == "chain":
            cache = CACHE / f"answers2-chain-{_config_hash(run_settings, spec)}.jsonl"
            rows = answers.run_chain(items, embedder, run_settings.with_(generator=spec), generator, cache)
        else:
            cache = CACHE / f"answers2-naive-{spec.replace(':', '_').replace('/', '_')}.jsonl"
            rows = answers.run_naive(items, embedder, generator, cache, max_tokens=settings.max_new_tokens)
        out[name] = {s: {**answers.metrics(members, rows), "refusals by rule": answers.refusal_reasons(members, rows),
                         "score auroc": answers.score_auroc(members, rows),
                         "score auroc (answer read)": answers.score_auroc(members, rows, label="read")}
                     for s, members in sets.items()}
        if scores is not None and kind == "chain" and run_settings is settings and spec == settings.generator:
            scores.update(system=name, titles=SET_TITLES, sets=refusal_page.distributions(sets, rows))
        rgb = [i for s, members in sets.items() if s.startswith("rgb-") for i in members]
        if rgb:  # answerable (noise 0.4) and unanswerable (noise 1.0) items of RGB together
            out[name]["rgb (0.4 and 1.0)"] = {"score auroc": answers.score_auroc(rgb, rows)}
    return out


SET_TITLES = {"sample": "Sample questions on the sample knowledge base (data/sample_questions.json)",
              "squad2": "SQuAD2 dev (CS224N), the `test` articles of split.json, knowledge base = the question's whole article",
              "rgb-1.0": "RGB zh_refine, noise 1.0 (every passage negative: must refuse)",
              "rgb-0.4": "RGB zh_refine, noise 0.4 (3 of 5 passages hold the answer)",
              "cmrc": "CMRC2018 dev, one knowledge base holding all the questions' articles",
              "cmrc-hant": "CMRC2018 dev in Traditional Chinese (OpenCC s2twp: questions, articles and answers)"}


def answers_report(by_system: dict, header_commit: str | None = None) -> list[str]:
    def rate(m: dict) -> str:
        if not m["n"]:
            return "–"
        return f"{m['rate']:.2f} [{m['ci95'][0]:.2f}, {m['ci95'][1]:.2f}] ({m['k']}/{m['n']})"

    def mean(m: dict | None) -> str:
        if not m or not m["n"]:
            return "–"
        return f"{m['mean']:.2f} [{m['ci95'][0]:.2f}, {m['ci95'][1]:.2f}]"

    def secs(v) -> str:
        return "–" if v is None else f"{v:.1f}"

    lines = ["## Answers", "",
             "Each question goes through the whole chain (hybrid retrieval, gate, prompt, generation, citation of every "
             "sentence, the refusal rules of rag/answer/refuse.py) or through the naive LangChain \"stuff\" chain "
             "(RecursiveCharacterTextSplitter 1000/200, FAISS top 4, the classic \"use the following pieces of context… if "
             "you don't know the answer, just say that you don't know\" prompt) with the same model. *correct*: the gold "
             "answer is contained in the answer (on the sample questions its page must be cited too); *F1*: mean word F1 "
             "(SQuAD) or character F1 (CMRC2018, RGB) against the gold answer over the answerable questions, refusals "
             "scoring 0 (containment rewards a long quote that holds the answer somewhere; F1 also counts what else it "
             "says), normal 95% interval; *false refusals*: "
             "answerable questions refused; *true refusals*: unanswerable questions refused; *cited*: answers (not refused) "
             "with at least one citation; *gold cited*: correct answers citing the passage or page that holds the gold "
             "answer; *evidence quoted*: answers where the model's draft gave way to the best passage sentence; "
             "*hedged*: answers given with the line \"the documents may not state this directly\" (the answerability "
             "score's middle band, rag/answer/refuse.py); *score AUROC*: how well the answerability score (P(answerable) "
             "from the model's hidden state) separates the set's answerable questions from its unanswerable ones, with "
             "a 95% bootstrap interval, over the items that reached the model; *score AUROC, answer read*: the same with "
             "an answerable question counted as answerable only where a gold answer stands in the passages the model "
             "read (the label the probe learns: it tells the score's own misses from retrieval's). "
             "Rates with 95% Wilson intervals and counts. Seconds are medians on 2 CPU cores (first token: where a "
             "model was called).", ""]

    def auroc(m: dict | None, key: str = "score auroc") -> str:
        a = (m or {}).get(key) or {}
        return "–" if a.get("auroc") is None else f"{a['auroc']:.2f} [{a['ci95'][0]:.2f}, {a['ci95'][1]:.2f}] (n={a['n']})"

    for s in dict.fromkeys(s for per_set in by_system.values() for s in per_set):
        rows = []
        for system, per_set in by_system.items():
            if (m := per_set.get(s)) is None or "items" not in m:
                continue
            rows.append([system, m["items"], rate(m["correct"]), mean(m.get("f1")), rate(m["false refusals"]), rate(m["true refusals"]),
                         rate(m["answers cited"]), rate(m["correct citing gold"]), rate(m["evidence quoted"]),
                         rate(m["hedged"]) if "hedged" in m else "–", auroc(m), auroc(m, "score auroc (answer read)"),
                         secs(m["median first token s"]), secs(m["median answer s"]),
                         ", ".join(f"{k} {v}" for k, v in m.get("refusals by rule", {}).items()) or "–"])
        if not rows:
            continue
        runs = {system: per_set[s]["run"] for system, per_set in by_system.items() if s in per_set and per_set[s].get("run")}
        earlier = {system: r for system, r in runs.items() if r.get("commit") != header_commit}
        note = (["Rows measured by an earlier run: " + "; ".join(
            f"{system} ({answers_eval.describe_run(r)})" for system, r in earlier.items())
            + ".", ""] if earlier else [])
        lines += [f"**{SET_TITLES.get(s, s)}**", "", *note,
                  table(["system", "items", "correct", "F1", "false refusals", "true refusals", "cited", "gold cited",
                         "evidence quoted", "hedged", "score AUROC", "score AUROC, answer read", "first token s", "answer s", "refusals by rule"], rows), ""]
    rgb = [(system, per_set["rgb (0.4 and 1.0)"]) for system, per_set in by_system.items() if "rgb (0.4 and 1.0)" in per_set]
    if any(auroc(m) != "–" for _, m in rgb):
        lines += ["**RGB, noise 0.4 (answerable) and noise 1.0 (unanswerable) together: the score's AUROC**", "",
                  table(["system", "score AUROC"], [[system, auroc(m)] for system, m in rgb]), ""]
    return lines


# ------------------------------------------------------------------ report
def stem_of(profile: str) -> str:
    """docs/eval.* holds the quick profile (development, and the answer rows); docs/eval_full.* the full sets."""
    return "eval" if profile == "quick" else "eval_full"


def write(results: dict, args) -> None:
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    stem = stem_of(results["profile"])
    write_json(docs / f"{stem}.json", results, indent=2)
    lines = [
        "# Retrieval and answer quality",
        "",
        f"Generated by `{results['command']}` on {results['date']} at commit {results.get('commit', '?')} ({results['machine']}). "
        f"Embedder `{results['embedder']}`, generator `{results['generator']}`; {results['profile']} profile. "
        "Do not edit by hand: re-run the command."
        + (" Retrieval settings of our rows: " + ", ".join(f"{k}={v}" for k, v in results["retrieval_settings"].items())
           + " (index_title: each chunk's document title and heading path in front of it for the dense and BM25 views; "
           "a row named \"hybrid, <setting>=<value>\" is the same run with those settings changed)."
           if results.get("retrieval_settings") else ""),
        "",
        "Systems, all in the same run with the same embedder: **naive** = the LangChain tutorial pipeline "
        "(RecursiveCharacterTextSplitter 1000/200 characters, FAISS.from_documents, similarity_search); "
        "**dense** = our chunks (256 tokens) and FAISS; **hybrid** = dense + BM25 (jieba / Snowball terms) fused by "
        "reciprocal rank (the default); **RAG-Fusion** = hybrid over the question plus 3 rewrites by the default "
        "generator, on the first questions of the set (with hybrid on the same questions beside it); "
        "**milvus dense / milvus hybrid** = the same chunks and vectors on the Milvus backend (milvus-lite in the process: "
        "Milvus's BM25 function with the jieba analyzer, hybrid_search with its RRF ranker; docs/milvus.md). "
        "Chunk results are folded to their document (first occurrence). Query embeddings come from the evaluation's "
        "cache, so *ms/query* is the search alone (for ours: BM25, FAISS, fusion and reading the passages from SQLite; "
        "for naive: FAISS in memory), measured on a shared, loaded machine; `make bench` measures latency properly.",
        "",
    ]
    for r in results["retrieval"]:
        metrics = list(next(iter(r["systems"].values()))["metrics"])
        lines += [f"## {r['set']}", "", r["note"] + f"; our index: {r.get('chunks', '?')} chunks"
                  + (f", naive: {r['naive_chunks']} chunks" if "naive_chunks" in r else "") + "."
                  + (f" This set was run by `{r['command']}` on {r['date']} at commit {r.get('commit', '?')}"
                     + (" with " + ", ".join(f"{k}={v}" for k, v in r["retrieval_settings"].items()) if r.get("retrieval_settings") else "")
                     + "." if r.get("command") and r["command"] != results["command"] else ""), ""]
        rows = [[name, s["queries"], *[f"{s['metrics'][m]:.3f}" for m in metrics], f"{s['ms_per_query']:.0f}"]
                for name, s in r["systems"].items()]
        lines += [table(["system", "queries", *metrics, "ms/query"], rows), ""]
        if r["set"] in PUBLISHED:
            lines += ["Published on the full corpus (../shared/data/beir_scifact/SOURCE.md), for orientation"
                      + (" — our run used a corpus subset, which scores higher" if "subset" in r["note"] else "") + ":", "",
                      table(["system", "nDCG@10", "R@100"], [list(p) for p in PUBLISHED[r["set"]]]), ""]
    if results.get("answers"):
        lines += answers_report(results["answers"], results.get("commit"))
    if results.get("plot"):
        lines += ["## Overview", "", f"![retrieval quality by system]({results['plot']})", ""]
    lines += ["## Timings", "", table(["set", "documents", "chunks (ours)", "indexing s (ours)", "texts embedded in this run"],
                                      [[r["set"], r["documents"], r.get("chunks", ""), f"{r.get('index_s', 0):.0f}", r.get("embedded_now", "")]
                                       for r in results["retrieval"]]), ""]
    write_markdown(docs / f"{stem}.md", lines)


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
    name = f"{stem_of(results['profile'])}.png"
    fig.savefig(ROOT / "docs" / name, dpi=120)
    return name


def parse_settings(spec: str) -> dict:
    """"rrf_k=60,index_title=false" -> {"rrf_k": 60.0, "index_title": False}, validated as Settings fields."""
    raw = dict(part.split("=", 1) for part in spec.split(",") if part.strip())
    unknown = set(raw) - set(Settings.model_fields)
    if unknown:
        raise SystemExit(f"--compare: unknown settings {sorted(unknown)}")
    return Settings.model_validate(raw).model_dump(include=set(raw))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="subsamples (minutes to an hour on 2 cores)")
    parser.add_argument("--sets", default="scifact,cmrc,hotpot,answers")
    parser.add_argument("--systems", default="naive,dense,hybrid,rerank,fusion,milvus",
                        help="milvus: dense and hybrid again on the Milvus backend (milvus-lite)")
    parser.add_argument("--embedder", default=None, help="embedder spec (default: Settings)")
    parser.add_argument("--device", default=None, help="cpu / cuda (default: Settings, i.e. auto)")
    parser.add_argument("--reranker", default="", help="e.g. cross-encoder:BAAI/bge-reranker-v2-m3 or llm")
    parser.add_argument("--rerank-queries", type=int, default=0, help="rerank only the first N queries (0 = all)")
    parser.add_argument("--no-fusion", action="store_true")
    parser.add_argument("--answers", type=int, default=0, help="items per answer set (default: 20 quick, 100 full)")
    parser.add_argument("--naive-answers", type=int, default=0,
                        help="items per set (of each kind) for naive systems, whose long prompts are slow on CPU (0 = all)")
    parser.add_argument("--answer-sets", default=",".join(ANSWER_SETS), help="of " + ", ".join(ANSWER_SETS))
    parser.add_argument("--answer-systems", default="chain:,chain:extractive,naive:",
                        help="chain:<generator> (ours) or naive:<generator>; no generator = Settings.generator")
    parser.add_argument("--compare", default="", help="a second hybrid row built with these settings changed, e.g. "
                        "rrf_k=60,index_title=false (the defaults before issue 16)")
    parser.add_argument("--cmrc-distractors", type=int, default=None,
                        help="CRUD-RAG distractors in CMRC2018's corpus (default: 300 quick, all 11,576 full)")
    parser.add_argument("--report-only", action="store_true", help="rewrite docs/eval.md and the plot from docs/eval.json")
    parser.add_argument("--drop-systems", default="",
                        help="answer rows to remove from docs/eval.json, by the end of their name (e.g. rows measured "
                             "on items or code that the others no longer share): 'max_context_tokens=320,0.5b-instruct-q4_k_m'")
    args = parser.parse_args()
    args.systems = args.systems.split(",")
    args.compare = parse_settings(args.compare)
    if args.cmrc_distractors is not None:
        for sizes in SIZES["cmrc"]:
            sizes["n_distractors"] = args.cmrc_distractors
    if args.report_only:
        results = json.loads((ROOT / "docs" / f"{stem_of('quick' if args.quick else 'full')}.json").read_text(encoding="utf-8"))
        drop = [x for x in args.drop_systems.split(",") if x]
        results["answers"] = {k: v for k, v in results.get("answers", {}).items() if not any(k.endswith(x) for x in drop)}
        results["plot"] = plot(results)
        write(results, args)
        refusal_page.write_page(results)
        return
    profile = 0 if args.quick else 1

    settings = Settings()
    if args.embedder:
        settings = settings.with_(embedder=args.embedder)
    if args.device:
        settings = settings.with_(device=args.device)
    embedder = CachingEmbedder(make_embedder(settings), CACHE)
    results = {"date": now(), "machine": machine(settings.device),
               "embedder": embedder.name, "generator": settings.generator, "profile": "quick" if args.quick else "full",
               "command": "make eval" + (" QUICK=1" if args.quick else "")
               + (f' EVAL_ARGS="{" ".join(extra)}"' if (extra := [a for a in sys.argv[1:] if a != "--quick"]) else ""),
               "retrieval": [], "answers": {},
               "retrieval_settings": {k: getattr(settings, k) for k in ("index_title", "rrf_k", "candidates")}}
    previous = ROOT / "docs" / f"{stem_of(results['profile'])}.json"
    if previous.exists():  # a run of some sets keeps the other sets' results of the same profile
        old = json.loads(previous.read_text(encoding="utf-8"))
        if old.get("profile") == results["profile"] and embedder.inner.opens(old.get("embedder", "")):
            names = {"scifact": "SciFact", "cmrc": "CMRC2018", "hotpot": "HotpotQA"}
            rerun = {names[s] for s in args.sets.split(",") if s in names}
            results["retrieval"] = [r for r in old.get("retrieval", []) if r["set"] not in rerun]
            # answer rows of systems and sets not re-run are kept, each stamped with the run that measured it
            # (rows of the earlier per-set format are dropped)
            # rows written before runs were stamped: the file's header names its last run, which may not be theirs
            earlier = dict.fromkeys(("command", "date", "commit", "machine"))
            kept = {system: per_set for system, per_set in old.get("answers", {}).items()
                    if all(isinstance(m, dict) and "correct" in m for k, m in per_set.items() if k != "rgb (0.4 and 1.0)")}
            results["answers"] = answers_eval.merge_answers({}, kept, earlier)
            if old.get("refusal"):
                results["refusal"] = answers_eval.merge_refusal(None, old["refusal"], earlier)
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
        results["retrieval"].append({**eval_retrieval(rset, embedder, settings, args, n_fusion),
                                     "command": results["command"], "date": results["date"], "commit": results["commit"],
                                     "retrieval_settings": results["retrieval_settings"]})
        write(results, args)
    if "answers" in sets:
        by_set = answer_items([x for x in args.answer_sets.split(",") if x], args.answers or SIZES["answers"][profile])
        systems = [x.strip() for x in args.answer_systems.split(",") if x.strip()]
        scores: dict = {}
        run = {k: results[k] for k in ("command", "date", "commit", "machine")}
        new = eval_answers(by_set, embedder, settings, systems, args.naive_answers, scores)
        results["answers"] = answers_eval.merge_answers(results["answers"], new, run)
        if scores:
            results["refusal"] = answers_eval.merge_refusal(results.get("refusal"), scores, run)
    results["plot"] = plot(results)
    write(results, args)
    refusal_page.write_page(results)
    print((ROOT / "docs" / f"{stem_of(results['profile'])}.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
