"""Answer quality through the whole chain, and through the naive LangChain "stuff" chain as the
anchor (`make eval`, sets sample / squad2 / rgb / cmrc; rag.eval.datasets describes the items).

Per set and system: correct (the gold answer is contained in the answer; on the sample questions its
page must be cited too), false refusals (answerable, refused), true refusals (unanswerable,
refused), the share of answers with at least one citation, the share of correct answers citing the
gold passage, median first-token and whole-answer seconds. Every proportion has a 95% Wilson interval.
Beside containment, the mean F1 over answerable questions (SQuAD's word F1, CMRC2018's character F1;
a refusal scores 0) with a normal 95% interval: containment rewards a long quote that holds the answer
somewhere, F1 also counts what the answer says beside it.
"""
from __future__ import annotations

import json
import math
import re
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from rag.eval.metrics import contains_answer, f1
from rag.eval.report import append_rows, read_rows_by_id
from rag.models.base import Embedder
from rag.models.base import Generator, Prompt
from rag.settings import Settings
from rag.text import strip_markers
from rag.text import language_of

if TYPE_CHECKING:
    from rag.kb import KnowledgeBase

# The classic prompt of LangChain's "stuff" QA chain (load_qa_chain / RetrievalQA), the yardstick.
NAIVE_PROMPT = ("Use the following pieces of context to answer the question at the end. If you don't know the answer, "
                "just say that you don't know, don't try to make up an answer.\n\n{context}\n\nQuestion: {question}\nHelpful Answer:")
_NAIVE_REFUSAL = re.compile(r"don'?t know|do not know|not (?:sure|provided|mentioned|given|stated)|no information|"
                            r"cannot (?:answer|be determined)|不知道|无法回答|没有提到|未提及|没有相关", re.I)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of k successes in n trials."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class Rate:
    k: int
    n: int

    def as_dict(self) -> dict:
        lo, hi = wilson(self.k, self.n)
        return {"k": self.k, "n": self.n, "rate": self.k / self.n if self.n else float("nan"), "ci95": [lo, hi]}


def groups(items: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for item in items:
        out.setdefault(item["group"], []).append(item)
    return out


def knowledge_bases(items: list[dict], done: dict, folder: Path, settings: Settings, embedder: Embedder,
                    generator: Generator) -> Iterator[tuple["KnowledgeBase", list[dict]]]:
    """Each group that has items not in `done`: a knowledge base in `folder` holding the group's
    passages (or files), and those items; the knowledge base is closed when the caller moves on."""
    from rag.kb import KnowledgeBase

    for g, members in enumerate(groups(items).values()):
        todo = [i for i in members if i["id"] not in done]
        if not todo:
            continue
        kb = KnowledgeBase(folder / f"kb{g}", settings, embedder=embedder, generator=generator)
        if "files" in todo[0]:
            kb.add(todo[0]["files"])
        else:
            kb.add_texts(todo[0]["passages"], sources=todo[0]["sources"])
        try:
            yield kb, todo
        finally:
            kb.close()


def run_chain(items: list[dict], embedder: Embedder, settings: Settings, generator: Generator, cache: Path,
              log: Callable[[str], None] = print) -> dict[str, dict]:
    """Every item asked of `KnowledgeBase.ask` on a knowledge base of its group's passages (or files);
    rows cached by item id in `cache` (JSON lines), so an interrupted run goes on where it stopped."""
    done = read_rows_by_id(cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with append_rows(cache) as out, tempfile.TemporaryDirectory() as tmp:
        for kb, todo in knowledge_bases(items, done, Path(tmp), settings, embedder, generator):
            for item in todo:
                t = time.perf_counter()
                answer = kb.ask(item["question"])
                row = {"id": item["id"], "text": answer.text, "refused": answer.refused, "reason": answer.refusal_reason,
                       "fallback": answer.fallback, "cited": [[c.name if "files" in item else c.source, c.page] for c in answer.citations],
                       "first_token": answer.timings.get("first_token"), "seconds": time.perf_counter() - t,
                       "generator": generator.name, "outcome": answer.outcome, "answerability": answer.answerability,
                       "decided_by": answer.decided_by, "answer_read": answer_read(item, answer.hits)}
                done[item["id"]] = row
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
                log(f"   {item['id']} {row['seconds']:.1f}s refused={row['refused']} {row['text'][:70]!r}")
    return {i["id"]: done[i["id"]] for i in items}


def run_naive(items: list[dict], embedder: Embedder, generator: Generator, cache: Path, *, k: int = 4,
              max_tokens: int = 200, log: Callable[[str], None] = print) -> dict[str, dict]:
    """The naive LangChain pipeline (RecursiveCharacterTextSplitter 1000/200, FAISS, top 4) with the
    classic "stuff" prompt and the same generator: no gate, no citations; its refusal is its "don't know"."""
    from rag.eval.naive import NaivePipeline

    done = read_rows_by_id(cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with append_rows(cache) as out:
        for group, members in groups(items).items():
            todo = [i for i in members if i["id"] not in done]
            if not todo:
                continue
            naive = NaivePipeline(embedder)
            if "files" in todo[0]:
                naive.index_files(todo[0]["files"])
            else:
                naive.index(list(zip(todo[0]["sources"], todo[0]["passages"])))
            for item in todo:
                t = time.perf_counter()
                context = "\n\n".join(d.page_content for d in naive.documents(item["question"], k))
                prompt = Prompt(messages=[{"role": "user", "content": NAIVE_PROMPT.format(context=context, question=item["question"])}],
                                question=item["question"], language=language_of(item["question"]))
                first, pieces = None, []
                for piece in generator.stream(prompt, max_tokens=max_tokens, temperature=0.0):
                    first = first if first is not None else time.perf_counter() - t
                    pieces.append(piece)
                text = "".join(pieces).strip()
                refused = not text or bool(_NAIVE_REFUSAL.search(text)) and len(text) < 200
                row = {"id": item["id"], "text": text, "refused": refused, "reason": "", "fallback": "", "cited": [],
                       "first_token": first, "seconds": time.perf_counter() - t, "generator": generator.name}
                done[item["id"]] = row
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
                log(f"   naive {item['id']} {row['seconds']:.1f}s refused={refused} {text[:70]!r}")
    return {i["id"]: done[i["id"]] for i in items}


def _correct(item: dict, row: dict) -> bool:
    if row["refused"] or not item["answerable"]:
        return False
    if not contains_answer(strip_markers(row["text"]), item["answers"]):
        return False
    return item.get("gold_page") is None or list(item["gold_page"]) in [list(c) for c in row["cited"]]


def _cites_gold(item: dict, row: dict) -> bool:
    if item.get("gold_page"):
        return list(item["gold_page"]) in [list(c) for c in row["cited"]]
    return any(source in item.get("gold", []) for source, _ in row["cited"])


def mean_ci(values: list[float], z: float = 1.96) -> dict:
    """Mean with a normal-approximation 95% interval."""
    if not values:
        return {"n": 0, "mean": float("nan"), "ci95": [float("nan"), float("nan")]}
    mean = statistics.fmean(values)
    half = z * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return {"n": len(values), "mean": mean, "ci95": [max(0.0, mean - half), min(1.0, mean + half)]}


def metrics(items: Iterable[dict], rows: dict[str, dict]) -> dict:
    items = [i for i in items if i["id"] in rows]
    has = [i for i in items if i["answerable"]]
    no = [i for i in items if not i["answerable"]]
    answered = [i for i in items if not rows[i["id"]]["refused"]]
    correct = [i for i in has if _correct(i, rows[i["id"]])]
    firsts = [rows[i["id"]]["first_token"] for i in items if rows[i["id"]]["first_token"] is not None]
    scores = [0.0 if rows[i["id"]]["refused"] else f1(strip_markers(rows[i["id"]]["text"]), i["answers"]) for i in has]
    out = {
        "items": len(items),
        "correct": Rate(len(correct), len(has)).as_dict(),
        "f1": mean_ci(scores),
        "false refusals": Rate(sum(rows[i["id"]]["refused"] for i in has), len(has)).as_dict(),
        "true refusals": Rate(sum(rows[i["id"]]["refused"] for i in no), len(no)).as_dict(),
        "answers cited": Rate(sum(bool(rows[i["id"]]["cited"]) for i in answered), len(answered)).as_dict(),
        "correct citing gold": Rate(sum(_cites_gold(i, rows[i["id"]]) for i in correct), len(correct)).as_dict(),
        "evidence quoted": Rate(sum(bool(rows[i["id"]].get("fallback")) for i in answered), len(answered)).as_dict(),
        "hedged": Rate(sum(rows[i["id"]].get("outcome") == "hedged" for i in answered), len(answered)).as_dict(),
        "median first token s": statistics.median(firsts) if firsts else None,
        "median answer s": statistics.median(rows[i["id"]]["seconds"] for i in items) if items else None,
    }
    return out


def refusal_reasons(items: Iterable[dict], rows: dict[str, dict]) -> dict[str, int]:
    """How many refusals each rule made (rag/answer/refuse.py)."""
    counts: dict[str, int] = {}
    for i in items:
        row = rows.get(i["id"])
        if row and row["refused"]:
            counts[row["reason"] or "refused"] = counts.get(row["reason"] or "refused", 0) + 1
    return counts



def answer_read(item: dict, hits: list) -> bool | None:
    """Whether a gold answer stands in the passages the model read (`hits`): the label the answerability probe
    learns (scripts/train_probe.py); an answerable question whose answer retrieval missed is not answerable from
    what the model saw. None where the item has no gold answer strings."""
    if not item["answerable"]:
        return False
    if not item.get("answers"):
        return None
    seen = "\n".join(h.text for h in hits)
    return any(a and a in seen for a in item["answers"])


def score_auroc(items: Iterable[dict], rows: dict[str, dict], rounds: int = 1000, seed: int = 0,
                label: str = "answerable") -> dict:
    """How well the answerability score tells answerable items from unanswerable ones: AUROC (ties count half)
    with a 95% bootstrap interval, over the items that got a score (a refusal before any model call has none).
    `label`: "answerable" (the set's own label) or "read" (a gold answer stands in the passages the model read,
    what the probe was trained to tell; rows from before this was recorded are left out)."""
    from rag.eval.metrics import auroc, auroc_ci

    def truth(i: dict, r: dict):
        return bool(i["answerable"]) if label == "answerable" else r.get("answer_read")

    scored = [(float(r["answerability"]), bool(y)) for i in items
              if (r := rows.get(i["id"])) is not None and r.get("answerability") is not None and (y := truth(i, r)) is not None]
    pos = sum(y for _, y in scored)
    if not scored or pos in (0, len(scored)):
        return {"n": len(scored), "auroc": None, "ci95": [None, None]}
    s, y = [x for x, _ in scored], [y for _, y in scored]
    return {"n": len(scored), "auroc": auroc(y, s), "ci95": list(auroc_ci(y, s, rounds, seed))}


def merge_answers(kept: dict, new: dict, run: dict) -> dict:
    """Answer rows by system and set: `new` (measured by `run`: command, date, commit) replaces those sets of each
    system and keeps the system's other sets and the other systems from `kept`. Every row is stamped with the run
    that measured it (a row already stamped keeps its stamp), so a report can say which rows are older."""
    out = {system: dict(per_set) for system, per_set in kept.items()}
    for system, per_set in new.items():
        out.setdefault(system, {}).update({name: {"run": run, **m} for name, m in per_set.items()})
    return out


def merge_refusal(kept: dict | None, new: dict, run: dict) -> dict:
    """docs/refusal.md's scores per set: `new` (of one system) replaces its sets and keeps the other sets of `kept`
    when `kept` is of the same system; `runs` names the run that measured each set (kept ones keep theirs)."""
    earlier = kept if kept and kept.get("system") == new.get("system") else {}
    runs = {name: earlier.get("runs", {}).get(name) for name in earlier.get("sets", {})}
    runs.update({name: new.get("runs", {}).get(name) or run for name in new.get("sets", {})})
    return {**new, "sets": {**earlier.get("sets", {}), **new.get("sets", {})}, "runs": runs}


def describe_run(run: dict) -> str:
    """Which run measured a row, for a report ("an earlier run" where the row predates the stamps)."""
    if not run.get("commit"):
        return "an earlier run, not recorded in the file: see the history of docs/eval.json"
    return f"`{run.get('command')}` on {run.get('date')} at commit {run.get('commit')}, {run.get('machine')}"
