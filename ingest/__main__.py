"""python -m ingest PATH... [--kb DIR] [--prune] [--rebuild] | --check [--no-repair] | --migrate --to milvus

Ingest PDF, Word, PowerPoint, Excel, CSV, HTML, Markdown/text and image files and folders into a knowledge base, with a progress bar and a report.
"""
from __future__ import annotations

import argparse
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ingest", description="Add documents to a knowledge base.")
    p.add_argument("paths", nargs="*", help="files (their type is read from their bytes) or folders (searched recursively for .pdf .docx .pptx .xlsx .csv .html .md .txt .png .jpg)")
    p.add_argument("--kb", default=None, help="knowledge-base folder (default: Settings.kb, data/index/default)")
    p.add_argument("--prune", action="store_true", help="remove documents under the given folders whose file is gone")
    p.add_argument("--rebuild", action="store_true", help="rebuild the vector index and manifest from kb.sqlite")
    p.add_argument("--check", action="store_true",
                   help="verify kb.sqlite and that the vector index and manifest match it; rebuild them from kb.sqlite if not")
    p.add_argument("--no-repair", action="store_true", help="with --check: only report, change nothing")
    p.add_argument("--migrate", action="store_true",
                   help="copy the local knowledge base (--kb) with its vectors to another backend (--to) and verify the counts")
    p.add_argument("--to", choices=["milvus"], default="milvus",
                   help="with --migrate: the target backend (Settings milvus_uri, milvus_token, milvus_collection)")
    p.add_argument("--password", action="append", default=[], metavar="FILE=PASSWORD",
                   help="password of an encrypted PDF (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.check:
        from rag.index.local.check import check_kb
        from rag.errors import RagError
        from rag.settings import Settings

        settings = Settings()
        if settings.backend != "local":
            print(f"error: --check verifies a local knowledge-base folder; on {settings.backend} the server keeps its "
                  "own indexes, and readers never see a document that is not committed", file=sys.stderr)
            return 2
        try:
            report = check_kb(args.kb or settings.kb, repair=not args.no_repair, settings=settings)
        except RagError as e:  # e.g. another process is writing: the repair waits for no one
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(report.summary())
        return 0 if report.ok else 1
    if args.migrate:
        return _migrate(args)
    if not args.paths and not args.rebuild:
        build_parser().print_usage(sys.stderr)
        print("error: give files or folders to ingest, or --rebuild, or --check", file=sys.stderr)
        return 2
    passwords = {}
    for item in args.password:
        name, sep, pw = item.partition("=")
        if not sep:
            print(f"error: --password takes FILE=PASSWORD, got {item!r}", file=sys.stderr)
            return 2
        passwords[name] = pw

    from ingest.pipeline import IngestInterrupted
    from rag.errors import RagError
    from rag.kb import KnowledgeBase

    from rag.settings import Settings

    try:
        settings = Settings()
        kb = KnowledgeBase(args.kb or settings.kb, settings)
        if args.rebuild:
            n = kb.rebuild()
            print(f"{kb.path}: rebuilt the vector index from kb.sqlite ({n} vectors)")
        if args.paths:
            with _TqdmProgress(disable=args.quiet) as progress:
                report = kb.add(args.paths, prune=args.prune, passwords=passwords, progress=progress)
            print(report.summary())
            return 1 if report.failed and not (report.added or report.skipped or report.replaced) else 0
    except IngestInterrupted as e:
        print("\n" + e.report.summary())
        return 130
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _migrate(args) -> int:
    from rag.index.milvus.migrate import migrate_to_milvus
    from rag.errors import RagError
    from rag.settings import Settings

    settings = Settings()
    try:
        report = migrate_to_milvus(args.kb or settings.kb, settings)
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0 if report.ok else 1


class _TqdmProgress:
    """Turns pipeline progress events into a tqdm bar over files, with chunk counts in the postfix."""

    def __init__(self, disable: bool = False) -> None:
        self.disable = disable
        self.bar = None

    def __enter__(self) -> "_TqdmProgress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def __call__(self, event) -> None:
        from tqdm import tqdm

        if event.stage == "start":
            self.bar = tqdm(total=event.files_total, unit="file", disable=self.disable, dynamic_ncols=True)
            return
        if self.bar is None:
            return
        self.bar.n = event.files_done
        name = event.path.rsplit("/", 1)[-1][:40]
        self.bar.set_postfix_str(f"{event.chunks_done} chunks embedded | {name}", refresh=False)
        self.bar.refresh()


if __name__ == "__main__":
    sys.exit(main())
