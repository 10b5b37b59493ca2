"""Files (or texts) into a knowledge base: hash, decide, parse, split, embed, commit.

Unchanged files (same path, same sha256 of bytes) are skipped without being parsed. Embedding runs
in batches that span small documents. The local backend commits each document in its own transaction
as soon as its vectors exist; a backend whose every write is a network round trip (Milvus) takes
the embedded documents of up to `store.commit_rows` chunks in one bulk write (the Store's declared
capability, rag/index/base.py). An interruption loses
at most the documents embedded but not yet committed.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import numpy as np

from ingest.normalize import normalize_text
from ingest.formats import SUPPORTED
from ingest.titles import first_line_title, with_leads
from rag.errors import DiskFull, ParseError, disk_errors
from rag.fs import file_sha256
from rag.index.records import EmbeddedDoc, StoredDoc
from rag.text import has_text, with_lead
from rag.types import Chunk, IngestReport, Page

if TYPE_CHECKING:
    from ingest.split import RecursiveSplitter
    from rag.index.base import Store
    from rag.models.base import Embedder
    from rag.settings import Settings

log = logging.getLogger(__name__)


class IngestInterrupted(KeyboardInterrupt):
    """Ctrl-C during ingestion. `.report` says what was committed before it."""

    def __init__(self, report: IngestReport) -> None:
        super().__init__("ingestion interrupted")
        self.report = report


@dataclass
class Progress:
    """What a progress callback receives: `progress(event)` after each step."""

    stage: str  # "start", "file", "embed", "done"
    files_done: int = 0
    files_total: int = 0
    path: str = ""
    chunks_done: int = 0  # chunks embedded so far in this call
    outcome: str = ""  # for stage "file": added / skipped / replaced / failed


@dataclass
class _Prepared:
    path: str
    sha256: str
    size: int
    pages: list[Page]
    chunks: list[Chunk]
    replace: StoredDoc | None
    vectors: list[np.ndarray] = field(default_factory=list)


def collect_files(paths: Iterable[str | Path], report: IngestReport) -> tuple[list[Path], list[Path]]:
    """Expand folders (recursively, files with a supported name only, sorted). Returns (files, folders given)."""
    files: list[Path] = []
    folders: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            folders.append(p.resolve())
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in SUPPORTED and not q.name.startswith("."))
            files += [q.resolve() for q in found]
        elif p.is_file():  # named explicitly: its bytes say whether it can be read (ingest.formats.sniff), not its name
            files.append(p.resolve())
        else:
            report.failed.append((str(p), "not found"))
    seen: set[Path] = set()
    unique = [f for f in files if not (f in seen or seen.add(f))]
    return unique, folders


class Ingestor:
    """Files (or texts) into a Store: handed the parts it writes with (store, embedder, splitter,
    settings), never the knowledge base. Call inside `store.writing()`. `titles`: the dense and keyword
    views keep each document's title and heading path with every chunk (ingest/titles.py; what the
    knowledge base was built with, Store.claim_views)."""

    def __init__(self, store: "Store", embedder: "Embedder", splitter: "RecursiveSplitter", settings: "Settings",
                 *, titles: bool = False) -> None:
        self.store, self.embedder, self.splitter, self.settings = store, embedder, splitter, settings
        self.titles = titles

    def chunks(self, pages: Sequence[Page]) -> list[Chunk]:
        """The pages' chunks; each keeps its lead (title, heading path) only when the title view is on."""
        chunks = self.splitter.split(pages)
        return chunks if self.titles else [replace(c, lead="") for c in chunks]

    def add(self, paths: Sequence[str | Path], *, prune: bool = False, passwords: dict[str, str] | None = None,
            progress: Callable[[Progress], None] | None = None) -> IngestReport:
        """Ingest PDF, Office, HTML, CSV, text and image files and folders (as KnowledgeBase.add)."""
        return ingest_paths(self, list(paths), prune=prune, passwords=passwords or {}, progress=progress)

    def add_texts(self, texts: Sequence[str], sources: Sequence[str] | None = None, *,
                  progress: Callable[[Progress], None] | None = None) -> IngestReport:
        """Store plain strings as documents (as KnowledgeBase.add_texts)."""
        return ingest_texts(self, list(texts), list(sources) if sources is not None else None, progress=progress)

    def remove(self, key: str) -> list[str]:
        """Remove the documents `key` names (Store.resolve); returns their paths."""
        removed = []
        for doc in self.store.resolve(key):
            self.store.delete(doc)
            removed.append(doc.path)
        if removed:
            self.store.flush()
        return removed


@contextmanager
def _ingest_run(ingestor: "Ingestor", total: int, progress: Callable[[Progress], None] | None) -> Iterator[tuple[IngestReport, Callable[[Progress], None], "_Batcher"]]:
    """The frame of one ingestion call: report, progress, batching; on Ctrl-C the documents
    committed so far stay and IngestInterrupted carries the report; the index is saved in any case."""
    report = IngestReport()
    started = time.perf_counter()
    notify = progress or (lambda event: None)
    notify(Progress("start", files_total=total))
    batcher = _Batcher(ingestor, report, notify, total)
    try:
        yield report, notify, batcher
        batcher.flush()
    except KeyboardInterrupt:
        report.interrupted = True
        raise IngestInterrupted(report) from None
    except DiskFull as e:  # the run stops: what was committed stays; the caller fails the files not done
        report.stopped = str(e)
    finally:
        report.seconds = time.perf_counter() - started
        try:
            with disk_errors():
                ingestor.store.flush()
        except DiskFull as e:  # the derived files stay behind the source of truth until space is freed (recover)
            log.warning("%s: %s", ingestor.store.where, e)
            report.stopped = report.stopped or str(e)
        notify(Progress("done", total, total, chunks_done=batcher.embedded))


def _fail_the_rest(report: IngestReport, keys: list[str]) -> None:
    """After a run stopped (the disk is full): each file it had not finished is failed with that reason."""
    if report.stopped:
        done = {*report.added, *report.replaced, *report.skipped, *(k for k, _ in report.failed)}
        report.failed += [(k, report.stopped) for k in keys if k not in done]


def ingest_paths(ingestor: "Ingestor", paths: list[str | Path], *, prune: bool, passwords: dict[str, str],
                 progress: Callable[[Progress], None] | None) -> IngestReport:
    from ingest.isolate import IsolatedParser
    from ingest.formats.base import ParseOptions

    collected = IngestReport()
    files, folders = collect_files(paths, collected)
    with _ingest_run(ingestor, len(files), progress) as (report, notify, batcher):
        report.failed += collected.failed
        s = ingestor.settings
        options = ParseOptions.from_settings(s)
        with _Prefetcher(ingestor, files, passwords,
                         IsolatedParser(s.parse_timeout_s, s.parse_memory_mb, options, s.ocr_page_timeout_s)) as ahead:
            for n, file in enumerate(files, 1):
                key = str(file)
                outcome = "failed"
                try:
                    sha, size, existing, parsing = ahead.take(n - 1)
                    if existing is not None and existing.sha256 == sha:
                        report.skipped.append(key)
                        outcome = "skipped"
                    elif (twin := ingestor.store.find_by_sha(sha)) is not None:
                        ingestor.store.copy(twin, key, existing)  # same bytes already parsed and embedded
                        outcome = "replaced" if existing else "added"
                        (report.replaced if existing else report.added).append(key)
                    else:
                        pages, warning = (parsing or ahead.parse(n - 1)).result()
                        if warning:
                            report.warnings.append((key, warning))
                        _report_pages(report, key, pages, s)
                        report.pages += len(pages)
                        batcher.push(_Prepared(key, sha, size, pages, ingestor.chunks(pages), existing))
                        outcome = "queued"
                except ParseError as e:
                    report.failed.append((key, str(e)))
                except OSError as e:
                    report.failed.append((key, f"cannot read: {e.strerror or e}"))
                if outcome != "queued":
                    notify(Progress("file", n, len(files), key, batcher.embedded, outcome))
        batcher.flush()
        if prune:
            _prune(ingestor, folders, set(map(str, files)), report)
    _fail_the_rest(report, [str(f) for f in files])
    return report


def ingest_texts(ingestor: "Ingestor", texts: list[str], sources: list[str] | None,
                 progress: Callable[[Progress], None] | None) -> IngestReport:
    shas = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
    keys = [sources[n] if sources is not None else f"text:{sha[:16]}" for n, sha in enumerate(shas)]
    with _ingest_run(ingestor, len(texts), progress) as (report, notify, batcher):
        for n, text in enumerate(texts, 1):
            data = text.encode("utf-8")
            sha, key = shas[n - 1], keys[n - 1]
            if batcher.waiting(key):  # the same source twice in one call: the later text replaces the earlier
                batcher.flush()
            existing = ingestor.store.find(key)
            if existing is not None and existing.sha256 == sha:
                report.skipped.append(key)
                notify(Progress("file", n, len(texts), key, batcher.embedded, "skipped"))
                continue
            pages = [Page(number=1, text=normalize_text(text))]
            pages = with_leads(pages, first_line_title(pages), headings=False)
            report.pages += 1
            batcher.push(_Prepared(key, sha, len(data), pages, ingestor.chunks(pages), existing))
    _fail_the_rest(report, keys)
    return report


class _Prefetcher:
    """Parses the next file while the current one is split and embedded.

    The parser child process reads file n+1 while this process embeds file n, so parsing time
    hides behind embedding (they use different processes; on 2 cores pypdf's one thread and the
    embedder's still overlap usefully). Hashing and the store lookups stay in the calling thread
    (SQLite connections belong to it); one background thread only talks to the parser process.
    Written by hand: the parser needs its own process for time and memory limits (ingest.isolate),
    and a one-file look-ahead over it is a few lines."""

    def __init__(self, ingestor: "Ingestor", files: list[Path], passwords: dict[str, str], parser) -> None:
        self.ingestor, self.files, self.passwords, self.parser = ingestor, files, passwords, parser
        self.plans: dict[int, tuple | Exception] = {}
        self.pool = None

    def __enter__(self) -> "_Prefetcher":
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(1, thread_name_prefix="parse")
        return self

    def __exit__(self, *exc) -> None:
        self.parser.close()  # kills a parse in flight (Ctrl-C), so the thread returns at once
        self.pool.shutdown(wait=True, cancel_futures=True)

    def parse(self, i: int):
        """Start parsing file i; a future of (pages, warning)."""
        file = self.files[i]
        password = self.passwords.get(str(file)) or self.passwords.get(file.name)

        def run():
            pages = self.parser.parse(file, password)
            return pages, self.parser.last_warning

        return self.pool.submit(run)

    def _plan(self, i: int) -> None:
        if i >= len(self.files) or i in self.plans:
            return
        file = self.files[i]
        try:
            size, limit = file.stat().st_size, self.ingestor.settings.max_file_mb
            if size > limit * 1024 * 1024:
                raise ParseError(f"too large: {size / 2**20:.0f} MB (limit {limit:g} MB)")
            sha = file_sha256(file)
            existing = self.ingestor.store.find(str(file))
            unchanged = existing is not None and existing.sha256 == sha
            parsing = None if unchanged or self.ingestor.store.find_by_sha(sha) is not None else self.parse(i)
            self.plans[i] = (sha, size, existing, parsing)
        except (ParseError, OSError) as e:
            self.plans[i] = e

    def take(self, i: int) -> tuple:
        """(sha256, size, stored document at that path, future of the parse or None) of file i,
        after starting on file i+1. Raises what hashing file i raised."""
        self._plan(i)
        self._plan(i + 1)
        plan = self.plans.pop(i)
        if isinstance(plan, Exception):
            raise plan
        return plan


class _Batcher:
    """Collects documents until a batch of chunks is ready and embeds it; commits the embedded documents
    once `store.commit_rows` chunks are ready (0: at once), and everything on flush()."""

    def __init__(self, ingestor: "Ingestor", report: IngestReport, notify: Callable[[Progress], None], total: int) -> None:
        self.ingestor, self.report, self.notify, self.total = ingestor, report, notify, total
        self.queue: list[_Prepared] = []
        self.queued_chunks = 0
        self.ready: list[_Prepared] = []
        self.ready_chunks = 0
        self.paths: set[str] = set()  # of the documents queued or ready
        self.embedded = 0
        self.done = len(report.skipped) + len(report.failed)
        self.batch = ingestor.settings.embed_batch_size or ingestor.embedder.call_size
        self.group = ingestor.store.commit_rows

    def waiting(self, path: str) -> bool:
        """Whether a document with this path is queued or embedded but not committed yet."""
        return path in self.paths

    def push(self, doc: _Prepared) -> None:
        self.queue.append(doc)
        self.paths.add(doc.path)
        self.queued_chunks += len(doc.chunks)
        if self.queued_chunks >= self.batch:
            self._embed()
            if self.ready_chunks >= self.group:
                self._commit_ready()

    def flush(self) -> None:
        """Embed what is queued and commit every embedded document."""
        self._embed()
        self._commit_ready()

    def _embed(self) -> None:
        texts = [(d, with_lead(c.lead, c.text)) for d in self.queue for c in d.chunks]  # the dense view
        for start in range(0, len(texts), self.batch):
            part = texts[start : start + self.batch]
            t0 = time.perf_counter()
            vectors = self.ingestor.embedder.embed_passages([t for _, t in part])
            self.report.embed_seconds += time.perf_counter() - t0
            for (doc, _), vec in zip(part, vectors):
                doc.vectors.append(vec)
            self.embedded += len(part)
            self.notify(Progress("embed", self.done, self.total, part[-1][0].path, self.embedded))
        self.ready += self.queue
        self.ready_chunks += self.queued_chunks
        self.queue, self.queued_chunks = [], 0

    def _commit_ready(self) -> None:
        if not self.ready:
            return
        try:
            with disk_errors():
                self.ingestor.store.commit_many([
                    EmbeddedDoc(d.path, d.sha256, d.size, d.pages, d.chunks,
                                np.stack(d.vectors) if d.vectors else np.zeros((0, 0), dtype=np.float32), d.replace)
                    for d in self.ready])
        except DiskFull:  # each document is committed whole or not at all: report those that were
            self.ready = [d for d in self.ready if (s := self.ingestor.store.find(d.path)) is not None and s.sha256 == d.sha256]
            self._report_committed()
            raise
        self._report_committed()

    def _report_committed(self) -> None:
        for doc in self.ready:
            (self.report.replaced if doc.replace else self.report.added).append(doc.path)
            self.report.chunks += len(doc.chunks)
            self.done += 1
            self.notify(Progress("file", self.done, self.total, doc.path, self.embedded, "replaced" if doc.replace else "added"))
        self.ready, self.ready_chunks = [], 0
        self.paths = {d.path for d in self.queue}


def _report_pages(report: IngestReport, path: str, pages: list[Page], settings) -> None:
    """Count OCR'd pages and warn about pages still without text, saying why."""
    ocr = [p for p in pages if p.ocr]
    report.ocr_pages += len(ocr)
    report.ocr_seconds += sum(p.ocr_seconds for p in pages)
    if ocr:
        report.warnings.append((path, f"OCR on {_where([p.number for p in ocr], pages)} ({sum(p.ocr_seconds for p in ocr):.1f} s)"))
    empty = [p for p in pages if not has_text(p.text, settings.min_page_chars)]
    report.empty_pages += len(empty)
    if not empty:
        return
    if any(p.place for p in pages):  # slides, sections, sheet rows: no text layer to OCR, just say where
        names = [p.place or f"part {p.number}" for p in empty]
        report.warnings.append((path, "no text in " + ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")))
        return
    tried = [p for p in empty if p.ocr or p.ocr_seconds > 0]  # OCR ran on them and found (next to) nothing
    garbage = [p.number for p in empty if p.garbage and p not in tried]
    blank = [p.number for p in empty if not p.garbage and p not in tried]
    failed = [p.number for p in tried]
    if settings.ocr and len([p for p in pages if p.ocr or p.ocr_seconds > 0]) >= settings.ocr_max_pages:
        why = f"over the OCR limit of {settings.ocr_max_pages} pages per file (setting ocr_max_pages)"
    elif settings.ocr:
        why = "OCR did not run (see the warning above)"
    else:
        why = "OCR is switched off (setting ocr)"
    if garbage:
        reasons = sorted({p.garbage for p in empty if p.garbage and not p.ocr})
        report.warnings.append((path, f"unusable text layer ({'; '.join(reasons)}) on {_where(garbage, pages)}: left out, {why}"))
    if blank:
        report.warnings.append((path, f"no text layer on {_where(blank, pages)}: scanned? Not OCR'd: {why}"))
    if failed:
        report.warnings.append((path, f"OCR found no more text than the text layer on {_where(failed, pages)}"))


def _where(numbers: list[int], pages: list[Page]) -> str:
    if len(numbers) == len(pages):
        return "every page" if len(pages) > 1 else "the page"
    word = "page" if len(numbers) == 1 else "pages"
    return f"{word} {_ranges(numbers)} ({len(numbers)} of {len(pages)})"


def _ranges(numbers: list[int]) -> str:
    parts: list[str] = []
    for n in numbers:
        if parts and parts[-1].split("-")[-1] == str(n - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{n}"
        else:
            parts.append(str(n))
    return ", ".join(parts[:12]) + (" ..." if len(parts) > 12 else "")


def _prune(ingestor: "Ingestor", folders: list[Path], present: set[str], report: IngestReport) -> None:
    """Remove stored documents under the given folders whose file is gone."""
    roots = [str(f) + os.sep for f in folders]
    for info in ingestor.store.documents():
        if any(info.path.startswith(r) for r in roots) and info.path not in present and not os.path.exists(info.path):
            doc = ingestor.store.find(info.path)
            if doc is not None:
                ingestor.store.delete(doc)
                report.removed.append(info.path)


