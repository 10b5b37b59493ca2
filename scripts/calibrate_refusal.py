"""Calibrate the two code-side refusal checks of the answer chain (writes docs/refusal.md/.json).

1. Score gate (`min_score`): what the gate sees (the best dense similarity among the passages the
   chain prompts with, after hybrid retrieval) for answerable questions vs off-topic ones, with
   the default embedder. Answerable: the sample documents' questions and CMRC2018 *trial*
   questions over their paragraphs. Off-topic: SciFact train queries and CMRC trial questions asked
   of the sample knowledge base, and the sample questions marked unanswerable. The threshold keeps
   99% of answerable questions.
2. Support check (`min_support`): the default generator answers RGB zh_refine items with 5 passages
   at noise 1.0 (no passage holds the answer: must refuse) and 0.4 (must answer), and SQuAD2 (CS224N
   dev) questions with their paragraph, unanswerable vs answerable. For each threshold we count
   rejections and correct answers; the chosen threshold maximises rejection + accuracy.

Raw generations are cached in .eval-cache/ so re-running only redoes the analysis.

    python scripts/calibrate_refusal.py [--rgb 20] [--squad 20]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CACHE = ROOT / ".eval-cache"
sys.path.insert(0, str(ROOT))

from rag import KnowledgeBase, Settings  # noqa: E402
from rag.chain import AnswerChain, _is_refusal, relevance  # noqa: E402
from rag.textutil import language_of  # noqa: E402
from rag.types import Hit  # noqa: E402
from rag.eval.datasets import rgb_items, squad_items  # noqa: E402
from rag.eval.report import read_rows_by_id  # noqa: E402

THRESHOLDS = [round(0.05 * i, 2) for i in range(0, 17)]


# ------------------------------------------------------------------ support calibration
def generate_all(items: list[dict], settings: Settings) -> list[dict]:
    CACHE.mkdir(exist_ok=True)
    kb = KnowledgeBase(Path(tempfile.mkdtemp()) / "kb", settings.with_(embedder="fake"))  # the chain needs a kb object only
    chain = AnswerChain(kb, kb.generator, settings.with_(min_support=0.0))
    from rag import prompts

    prompt_id = hashlib.sha1(json.dumps([prompts.SYSTEM, prompts.user_message("q", ["b"], "en")]).encode()).hexdigest()[:8]
    cache_file = CACHE / f"calibration-{kb.generator.name.replace('/', '_').replace(':', '_')}-{prompt_id}.jsonl"
    done = read_rows_by_id(cache_file)
    with cache_file.open("a", encoding="utf-8") as out:
        for k, item in enumerate(items, 1):
            if item["id"] in done:
                continue
            language = language_of(item["question"])
            hits = [Hit(text=p, score=1.0, source=f"doc{i}", page=1, chunk_id=i) for i, p in enumerate(item["passages"], 1)]
            t = time.perf_counter()
            gen = chain.answer_from(item["question"], hits, language)
            raw = []
            try:
                while True:
                    raw.append(next(gen))
            except StopIteration as stop:
                answer = stop.value
            row = {"id": item["id"], "raw": "".join(raw), "model_refused": _is_refusal("".join(raw), language),
                   "support": answer.support, "seconds": time.perf_counter() - t,
                   "first_token": answer.timings.get("first_token"), "language": language}
            done[item["id"]] = row
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            print(f"[{k}/{len(items)}] {item['id']} {row['seconds']:.1f}s support={row['support']:.2f} refused={row['model_refused']}", flush=True)
    kb.close()
    return [done[item["id"]] for item in items]


def outcome(item: dict, row: dict, threshold: float) -> tuple[bool, bool]:
    """(refused, correct) of one item under a support threshold."""
    refused = row["model_refused"] or row["support"] < threshold
    correct = (not refused) and any(a and a.lower() in row["raw"].lower() for a in item["answers"])
    return refused, correct


def sweep(items: list[dict], rows: list[dict]) -> list[dict]:
    table = []
    for t in THRESHOLDS:
        line = {"threshold": t}
        for name in ("rgb", "squad2"):
            neg = [(i, r) for i, r in zip(items, rows) if i["set"] == name and not i["answerable"]]
            pos = [(i, r) for i, r in zip(items, rows) if i["set"] == name and i["answerable"]]
            line[f"{name}_rejection"] = sum(outcome(i, r, t)[0] for i, r in neg) / len(neg)
            line[f"{name}_accuracy"] = sum(outcome(i, r, t)[1] for i, r in pos) / len(pos)
            line[f"{name}_false_refusal"] = sum(outcome(i, r, t)[0] for i, r in pos) / len(pos)
        line["score"] = (line["rgb_rejection"] + line["rgb_accuracy"] + line["squad2_rejection"] + line["squad2_accuracy"]) / 4
        table.append(line)
    return table


# ------------------------------------------------------------------ gate calibration
def gate_scores(settings: Settings, cmrc_paragraphs: int) -> dict:
    questions = json.loads((ROOT / "data" / "sample_questions.json").read_text(encoding="utf-8"))
    trial = json.loads((SHARED / "cmrc2018" / "cmrc2018_trial.json").read_text(encoding="utf-8"))["data"]
    paragraphs, cmrc_q = [], []
    for article in trial:
        for p in article["paragraphs"]:
            if len(paragraphs) < cmrc_paragraphs:
                paragraphs.append((p["id"], p["context"]))
                cmrc_q += [qa["question"] for qa in p["qas"]]
    scifact_q = [json.loads(line)["text"] for line in (SHARED / "beir_scifact" / "queries.jsonl").open(encoding="utf-8")][:200]
    with tempfile.TemporaryDirectory() as tmp:
        sample = KnowledgeBase(Path(tmp) / "sample", settings)
        sample.add([ROOT / "data" / "docs"])
        cmrc = KnowledgeBase(Path(tmp) / "cmrc", settings)
        cmrc.add_texts([c for _, c in paragraphs], sources=[i for i, _ in paragraphs])

        def top(kb, qs):
            # what the chain's gate sees: the best dense similarity among the passages it would prompt with
            k = settings.answer_passages
            return [relevance(kb.search(q, k=max(k, settings.top_k))[:k]) for q in qs]

        scores = {
            "answerable: sample questions / sample docs": top(sample, [q["question"] for q in questions if q["page"]]),
            "answerable: CMRC trial questions / their paragraphs": top(cmrc, cmrc_q),
            "off-topic: sample questions marked unanswerable / sample docs": top(sample, [q["question"] for q in questions if not q["page"]]),
            "off-topic: CMRC trial questions / sample docs": top(sample, cmrc_q[:200]),
            "off-topic: SciFact queries / sample docs": top(sample, scifact_q),
            "off-topic: SciFact queries / CMRC paragraphs": top(cmrc, scifact_q),
        }
        sample.close()
        cmrc.close()
    return scores


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(q * len(values))))]


# ------------------------------------------------------------------ report
def write(gate: dict, gate_threshold: float, table: list[dict], chosen: dict, rows: list[dict], items: list[dict], args, settings) -> None:
    lines = [
        "# Refusal calibration",
        "",
        f"Generated by `python scripts/calibrate_refusal.py --rgb {args.rgb} --squad {args.squad} --cmrc {args.cmrc}` on "
        f"{datetime.now(timezone.utc):%Y-%m-%d}; do not edit by hand. Embedder `{settings.embedder}`, generator `{settings.generator}`.",
        "",
        "## 1. Score gate (`min_score`): no model call when the best passage scores below it",
        "",
        "| questions / knowledge base | n | min | 1st pct | median | max | share below the gate |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, values in gate.items():
        below = sum(v < gate_threshold for v in values) / len(values)
        lines.append(f"| {name} | {len(values)} | {min(values):.3f} | {percentile(values, 0.01):.3f} | {percentile(values, 0.5):.3f} | "
                     f"{max(values):.3f} | {below:.0%} |")
    lines += [
        "",
        f"Gate = 1st percentile of all answerable top-1 scores, rounded down to 0.01: **{gate_threshold:.2f}**. "
        "multilingual-e5 scores are compressed (off-topic questions still score high), so the gate only stops clearly "
        "unrelated questions; the support check below handles related-but-unanswerable ones.",
        "",
        "## 2. Support check (`min_support`): refuse an answer whose content words are mostly not in its passages",
        "",
        f"RGB zh_refine: {args.rgb} questions, 5 passages each, at noise 1.0 (must refuse) and 0.4 (must answer). "
        f"SQuAD2 CS224N dev: {args.squad} unanswerable and {args.squad} answerable questions with their paragraph. "
        "Rejection = the model's refusal sentence or support below the threshold; accuracy = not refused and a gold answer "
        "string in the output.",
        "",
        "| min_support | RGB rejection (noise 1.0) | RGB accuracy (noise 0.4) | SQuAD2 NoAns rejection | SQuAD2 HasAns accuracy | SQuAD2 HasAns refused | mean |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table:
        mark = " **←**" if r is chosen else ""
        lines.append(f"| {r['threshold']:.2f}{mark} | {r['rgb_rejection']:.0%} | {r['rgb_accuracy']:.0%} | {r['squad2_rejection']:.0%} | "
                     f"{r['squad2_accuracy']:.0%} | {r['squad2_false_refusal']:.0%} | {r['score']:.3f} |")
    model_refusals = sum(r["model_refused"] for r, i in zip(rows, items) if not i["answerable"]) / max(1, sum(not i["answerable"] for i in items))
    seconds = [r["seconds"] for r in rows]
    lines += [
        "",
        f"Chosen: **min_support = {chosen['threshold']:.2f}** (best mean). The model itself said its refusal sentence on "
        f"{model_refusals:.0%} of the unanswerable items. Generation time per item: median {percentile(seconds, 0.5):.1f} s "
        f"(2 CPU cores).",
    ]
    out = ROOT / "docs" / "refusal.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps({"gate": {k: v for k, v in gate.items()}, "min_score": gate_threshold,
                                                    "support_table": table, "min_support": chosen["threshold"]}, indent=1) + "\n",
                                        encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rgb", type=int, default=20)
    ap.add_argument("--squad", type=int, default=20)
    ap.add_argument("--cmrc", type=int, default=100, help="CMRC trial paragraphs for the gate")
    args = ap.parse_args()
    settings = Settings()
    gate = gate_scores(settings, args.cmrc)
    answerable = [v for name, values in gate.items() if name.startswith("answerable") for v in values]
    gate_threshold = int(percentile(answerable, 0.01) * 100) / 100
    print("gate", gate_threshold, flush=True)
    items = rgb_items(args.rgb) + squad_items(args.squad)
    rows = generate_all(items, settings)
    table = sweep(items, rows)
    chosen = max(table, key=lambda r: (r["score"], -r["threshold"]))
    write(gate, gate_threshold, table, chosen, rows, items, args, settings)
    print(f"min_score={gate_threshold:.2f} min_support={chosen['threshold']:.2f}")


if __name__ == "__main__":
    main()
