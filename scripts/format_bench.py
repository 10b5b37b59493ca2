"""Ingest speed per format (part of `make bench`): the same tables (rag/eval/tableqa.py) written as
PDF, .docx, .xlsx, .csv, .pptx, .html and .md, each parsed in the parser process (ingest.isolate,
as ingestion does; median of --repeat runs after one warm-up) and ingested whole into a fresh
knowledge base with the configured embedder; and the cost of PDF table detection (setting
pdf_tables) on the sample PDFs in data/docs. Writes docs/formats.md and docs/formats.json.

    python scripts/format_bench.py [--repeat 5] [--embedder e5]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from ingest.isolate import IsolatedParser
from ingest.formats.base import ParseOptions
from rag import KnowledgeBase, Settings
from rag.eval import tableqa
from rag.eval.report import load_average, machine, now, table, write_json, write_markdown


def parse_seconds(parser: IsolatedParser, path: Path, repeat: int) -> tuple[float, int]:
    pages = parser.parse(path)  # warm-up: imports in the parser process
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        pages = parser.parse(path)
        times.append(time.perf_counter() - started)
    return statistics.median(times), len(pages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--embedder", default=None, help="embedder spec (default: Settings)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    load_before = load_average()[0]  # stated in the page: timings from a busy machine mean little
    settings = Settings() if not args.embedder else Settings(embedder=args.embedder)
    options = ParseOptions.from_settings(settings)
    rows, results = [], {"formats": [], "pdf_tables": []}
    with tempfile.TemporaryDirectory(prefix="formats-") as tmp:
        files = tableqa.write(tableqa.make_set(), Path(tmp) / "docs", list(tableqa.WRITERS))
        with IsolatedParser(settings.parse_timeout_s, settings.parse_memory_mb, replace(options, pdf_tables=True)) as isolated:
            for fmt, path in files.items():
                parse_s, parts = parse_seconds(isolated, path, args.repeat)
                started = time.perf_counter()
                with KnowledgeBase(Path(tmp) / f"kb-{fmt}", settings.with_(pdf_tables=True)) as kb:
                    report = kb.add([path])
                ingest_s = time.perf_counter() - started
                r = {"format": fmt, "bytes": path.stat().st_size, "parts": parts, "chunks": report.chunks,
                     "parse_s": parse_s, "ingest_s": ingest_s, "embed_s": report.embed_seconds}
                results["formats"].append(r)
                print(r, flush=True)
                rows.append([fmt, f"{r['bytes'] / 1024:.0f}", parts, report.chunks, f"{parse_s * 1000:.0f}",
                             f"{ingest_s:.2f}", f"{report.embed_seconds:.2f}"])
    pdf_rows = []
    for pdf in sorted((ROOT / "data" / "docs").glob("*.pdf")):
        timing = {}
        for on in (False, True):
            with IsolatedParser(settings.parse_timeout_s, settings.parse_memory_mb, replace(options, pdf_tables=on)) as isolated:
                timing[on], pages = parse_seconds(isolated, pdf, args.repeat)
        r = {"file": pdf.name, "pages": pages, "off_s": timing[False], "on_s": timing[True]}
        results["pdf_tables"].append(r)
        print(r, flush=True)
        pdf_rows.append([pdf.name, pages, f"{timing[False] / pages * 1000:.0f}", f"{timing[True] / pages * 1000:.0f}"])
    text = "\n".join([
        "# Ingest speed per format",
        "",
        f"Written by `python scripts/format_bench.py` (part of `make bench`) on {now()[:10]}, "
        f"{machine()}, load average {load_before:.2f} before the run; embedder `{settings.embedder}`, chunk size {settings.chunk_size}.",
        "",
        "The same two tables (36 + 8 rows, rag/eval/tableqa.py) in each format. Parse: the parser process "
        f"(ingest.isolate), median of {args.repeat} runs after a warm-up; parts are pages, slides, sections or "
        "row blocks. Ingest: a fresh knowledge base, parse + split + embed + commit, embedding and the start of "
        "the parser process (once per ingestion call) included.",
        "",
        table(["format", "KB", "parts", "chunks", "parse ms", "ingest s", "of which embed s"], rows, "lrrrrrr"),
        "",
        "## PDF table detection (setting `pdf_tables`) on the sample PDFs",
        "",
        table(["file", "pages", "ms/page off", "ms/page on"], pdf_rows, "lrrr"),
        "",
    ])
    print(text)
    if not args.no_write:
        write_json(ROOT / "docs" / "formats.json", {"when": now(), "machine": machine(), **results})
        write_markdown(ROOT / "docs" / "formats.md", text)


if __name__ == "__main__":
    main()
