"""Table QA (part of `make eval`): answers whose gold is one table cell, with tables stored as Markdown
tables (this project's parsers) vs as plain extracted text (a PDF's text layer, a .docx's cells one per
line, an .xlsx's rows as lines), for the same tables written as a PDF, a .docx and an .xlsx
(rag/eval/tableqa.py generates them and 176 questions from one seed). Writes docs/tables.md and
docs/tables.json.

    python scripts/table_eval.py                 # all 176 questions x 3 formats x 2 modes (the default generator)
    python scripts/table_eval.py --quick         # 40 questions
    python scripts/table_eval.py --generator extractive --formats xlsx --limit 10

Per (format, mode): "cell in top 3" = a passage among the first three search results holds both the
row's key (city / department) and the cell's value; "correct" = the answer is not a refusal, names the
value and none of the row's other numbers (tableqa.picks_the_cell), with its 95% Wilson interval.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from rag import KnowledgeBase, Settings
from rag.eval import tableqa
from rag.eval.answers import Rate
from rag.eval.report import machine, now, table, write_json, write_markdown

FORMATS = ["pdf", "docx", "xlsx"]
MODES = ["markdown", "text"]


def run(fmt: str, mode: str, path: Path, questions: list[tableqa.Question], settings: Settings, folder: Path,
        verbose: bool = False) -> dict:
    started = time.perf_counter()
    with KnowledgeBase(folder / f"{fmt}-{mode}", settings.with_(pdf_tables=(mode == "markdown"))) as kb:
        if mode == "markdown":
            report = kb.add([path])
        else:
            report = kb.add_texts([tableqa.plain_text(fmt, path)], sources=[path.name])
        if report.failed:
            raise SystemExit(f"{fmt}: {report.failed}")
        ingest_s = time.perf_counter() - started
        found = correct = refused = 0
        rows = []
        for q in questions:
            hits = kb.search(q.question, k=3)
            in_top = any(q.key in h.text and q.answer in h.text for h in hits)
            answer = kb.ask(q.question)
            ok = not answer.refused and tableqa.picks_the_cell(answer.text, q)
            found, correct, refused = found + in_top, correct + ok, refused + answer.refused
            if verbose:
                print(f"  {q.question} gold {q.answer}: {'OK' if ok else 'refused' if answer.refused else 'wrong'}: {answer.text[:160]!r}", flush=True)
            rows.append({"id": q.id, "question": q.question, "gold": q.answer, "answer": answer.text,
                         "refused": answer.refused, "correct": ok, "cell_in_top3": in_top,
                         "cited": [c.where for c in answer.citations]})
        n = len(questions)
        return {"format": fmt, "mode": mode, "n": n, "chunks": report.chunks, "ingest_s": ingest_s,
                "cell_in_top3": Rate(found, n).as_dict(), "correct": Rate(correct, n).as_dict(),
                "refused": Rate(refused, n).as_dict(), "rows": rows}


def write(results: list[dict], args, settings: Settings) -> None:
    docs = ROOT / "docs"
    write_json(docs / "tables.json", {"when": now(), "machine": machine(), "generator": settings.generator,
                                      "embedder": settings.embedder, "results": results})

    def rate(r: dict) -> str:
        lo, hi = r["ci95"]
        return f"{r['rate']:.2f} ({lo:.2f}-{hi:.2f})"

    rows = [[r["format"], "Markdown tables" if r["mode"] == "markdown" else "plain text", r["n"], r["chunks"],
             rate(r["cell_in_top3"]), rate(r["correct"]), f"{r['refused']['rate']:.2f}"] for r in results]
    text = "\n".join([
        "# Table QA: tables as Markdown vs as plain text",
        "",
        f"Written by `python scripts/table_eval.py{' --quick' if args.quick else ''}` (part of `make eval`) on "
        f"{now()[:10]}, {machine()}; generator `{settings.generator}`, embedder "
        f"`{settings.embedder}`, chunk size {settings.chunk_size}.",
        "",
        "The same two tables (allowances for 36 cities, budgets of 8 departments by quarter) written as a PDF, "
        "a .docx and an .xlsx by `rag/eval/tableqa.py`; every question's answer is one cell. *Markdown tables*: "
        "the files ingested by this project (PDF with `pdf_tables` on; each chunk of a table repeats its caption "
        "and header). *Plain text*: what a text extractor gives (the PDF's text layer, the .docx cells one per "
        "line, the .xlsx rows as lines), stored as one text. Cell in top 3: a passage among the first three "
        "holds the row's key and the value; correct: the answer names the value and none of the row's other "
        "numbers (not refused). 95% Wilson intervals in brackets.",
        "",
        table(["format", "tables as", "questions", "chunks", "cell in top 3", "correct", "refused"], rows, "llrrrrr"),
        "",
    ])
    write_markdown(docs / "tables.md", text)
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="40 questions instead of 176")
    parser.add_argument("--limit", type=int, default=0, help="the first N questions (spread over both tables)")
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--modes", default=",".join(MODES), help="markdown, text or both")
    parser.add_argument("--generator", default=None, help="generator spec (default: Settings)")
    parser.add_argument("--embedder", default=None, help="embedder spec (default: Settings)")
    parser.add_argument("--no-write", action="store_true", help="print, do not write docs/")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every answer")
    args = parser.parse_args()
    settings = Settings()
    if args.generator:
        settings = settings.with_(generator=args.generator)
    if args.embedder:
        settings = settings.with_(embedder=args.embedder)
    tables = tableqa.make_set()
    limit = args.limit or (40 if args.quick else 0)
    questions = tables.questions
    if limit:  # every k-th question, so both tables and all columns are asked
        step = max(1, len(questions) // limit)
        questions = questions[::step][:limit]
    results = []
    with tempfile.TemporaryDirectory(prefix="tableqa-") as tmp:
        files = tableqa.write(tables, Path(tmp) / "docs", args.formats.split(","))
        for fmt, path in files.items():
            for mode in args.modes.split(","):
                result = run(fmt, mode, path, questions, settings, Path(tmp), args.verbose)
                print(f"{fmt} {mode}: cell in top 3 {result['cell_in_top3']['rate']:.2f}, "
                      f"correct {result['correct']['rate']:.2f}", flush=True)
                results.append(result)
    if args.no_write:
        return
    write(results, args, settings)


if __name__ == "__main__":
    main()
