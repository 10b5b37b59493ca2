"""python -m ingest --check [--kb DIR] [--no-repair]: verify a local knowledge-base folder, repair what can be derived.

kb.sqlite is the source of truth; vectors.faiss and manifest.json are derived from it. The check:
  1. SQLite's own integrity check (a damaged source of truth cannot be repaired here: say so);
  2. every document's chunk and page rows match its counts (one transaction wrote them, so a
     mismatch means damage, not a crash), and every chunk has an embedding of the stored dimension;
  3. the ids in vectors.faiss equal the chunk ids (a crash between a commit and the index save
     leaves them behind; opening the knowledge base syncs them too, this reports it);
  4. manifest.json exists, parses, and its counts equal SQLite's.
With repair, the derived files are rebuilt from SQLite (LocalStore.rebuild), under the write lock.
kb.sqlite is read through DocStore opened read-only: checking changes nothing.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag.fs import read_folder_pointer
from rag.index.local.docstore import DocStore
from rag.index.local.keywords import keyword_index_class
from rag.index.local.store import LocalStore
from rag.index.local.vectors import load_vector_index
from rag.settings import Settings


@dataclass
class CheckReport:
    path: str
    problems: list[str] = field(default_factory=list)  # what is wrong (before any repair)
    repaired: list[str] = field(default_factory=list)
    fatal: bool = False  # kb.sqlite itself is damaged: nothing derived can fix it
    documents: int = 0
    chunks: int = 0
    vectors: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems or (not self.fatal and bool(self.repaired))

    def summary(self) -> str:
        head = f"{self.path}: {self.documents} documents, {self.chunks} chunks, " + (
            f"{self.vectors} vectors" if self.vectors is not None else "no vector index file")
        if not self.problems:
            return head + "\nOK: kb.sqlite is intact and the derived files match it"
        lines = [head] + [f"PROBLEM {p}" for p in self.problems] + [f"REPAIRED {r}" for r in self.repaired]
        if self.fatal:
            lines.append("kb.sqlite is damaged: restore it from a backup, or re-ingest the documents into a new folder")
        elif not self.repaired:
            lines.append("run python -m ingest --check without --no-repair to rebuild the derived files from kb.sqlite")
        return "\n".join(lines)


def check_kb(path: str | Path, repair: bool = False, settings=None) -> CheckReport:
    path = Path(path)
    report = CheckReport(str(path))
    db = path / "kb.sqlite"
    if not db.exists():
        report.problems.append(f"{db} does not exist: not a knowledge base")
        report.fatal = True
        return report
    try:
        store = DocStore(db, readonly=True)  # checking must not create or change anything
        try:
            source = _check_source(store, report)
        finally:
            store.close()
    except sqlite3.DatabaseError as e:  # not a database at all, or damaged beyond the integrity check
        report.problems.append(f"kb.sqlite cannot be read: {e}")
        report.fatal = True
        return report
    if source is None:
        return report
    dim, chunk_ids = source
    derived_ok = _check_vectors(path, chunk_ids, dim, report)
    derived_ok = _check_keywords(path, chunk_ids, report) and derived_ok
    derived_ok = _check_manifest(path, report) and derived_ok
    if repair and not derived_ok and not report.fatal:
        n = _rebuild(path, int(dim) if dim else 0, settings)
        report.repaired.append(f"rebuilt vectors.faiss ({n} vectors), the keyword index and manifest.json from kb.sqlite")
    return report


def _check_source(store: DocStore, report: CheckReport) -> tuple[str | None, np.ndarray] | None:
    """kb.sqlite itself: SQLite's integrity check (None when it fails: nothing else can be read), then rows
    against their records. Returns (the stored dim, the chunk ids)."""
    result = store.integrity()
    if result != ["ok"]:
        report.problems.append("kb.sqlite integrity check: " + "; ".join(result[:5]))
        report.fatal = True
        return None
    report.documents, report.chunks = store.counts()
    damage = store.damage()
    if damage:
        report.problems += damage
        report.fatal = True
    return store.get_meta("dim"), store.chunk_ids()


def _rebuild(path: Path, dim: int, settings) -> int:
    """Rebuild the derived files from kb.sqlite (under the write lock). The stored vectors suffice: no
    embedder is made; whether they are normalised is taken from the manifest where it says."""
    store = LocalStore(path, settings or Settings(), dim=dim, normalized=_recorded_normalized(path))
    try:
        return store.rebuild()
    finally:
        store.close()


def _recorded_normalized(path: Path) -> bool:
    """manifest.json's embedder.normalized; True (what every embedder gives) when the manifest cannot say."""
    try:
        recorded = json.loads((path / "manifest.json").read_text(encoding="utf-8"))["embedder"]["normalized"]
    except (OSError, ValueError, KeyError, TypeError):
        return True
    return recorded if isinstance(recorded, bool) else True


def _check_vectors(path: Path, chunk_ids: np.ndarray, dim: str | None, report: CheckReport) -> bool:
    file = path / "vectors.faiss"
    if not file.exists():
        if len(chunk_ids):
            report.problems.append(f"{file.name} is missing ({len(chunk_ids)} chunks in kb.sqlite)")
            return False
        return True
    try:
        index = load_vector_index(file, int(dim) if dim else _file_dim(file))
    except Exception as e:
        report.problems.append(f"{file.name} cannot be read: {type(e).__name__}: {e}")
        return False
    ids = np.sort(index.ids())
    report.vectors = len(ids)
    if np.array_equal(ids, chunk_ids):
        return True
    extra = np.setdiff1d(ids, chunk_ids)
    missing = np.setdiff1d(chunk_ids, ids)
    report.problems.append(f"{file.name} ids differ from the chunk ids in kb.sqlite: {len(missing)} missing, "
                           f"{len(extra)} not in kb.sqlite" + (", duplicates" if len(np.unique(ids)) != len(ids) else ""))
    return False


def _check_keywords(path: Path, chunk_ids: np.ndarray, report: CheckReport) -> bool:
    """The BM25 folder named by keywords.json must load and hold exactly the chunk ids (a missing one
    is only a problem when there are chunks: it is rebuilt on first search anyway)."""
    try:
        saved = read_folder_pointer(path / "keywords.json")
        if saved is None:
            if len(chunk_ids):
                report.problems.append(f"keywords.json is missing ({len(chunk_ids)} chunks in kb.sqlite)")
                return False
            return True
        folder, info = saved
        ids = np.sort(keyword_index_class(info["kind"]).load(folder).ids())
    except Exception as e:
        report.problems.append(f"the keyword index cannot be read: {type(e).__name__}: {e}")
        return False
    if np.array_equal(ids, chunk_ids):
        return True
    report.problems.append(f"the keyword index holds {len(ids)} chunks, kb.sqlite {len(chunk_ids)}")
    return False


def _check_manifest(path: Path, report: CheckReport) -> bool:
    file = path / "manifest.json"
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        report.problems.append("manifest.json is missing")
        return False
    except (OSError, ValueError) as e:
        report.problems.append(f"manifest.json cannot be read: {e}")
        return False
    counts = manifest.get("counts", {})
    if counts.get("documents") != report.documents or counts.get("chunks") != report.chunks:
        report.problems.append(f"manifest.json counts {counts.get('documents')} documents / {counts.get('chunks')} chunks, "
                               f"kb.sqlite holds {report.documents} / {report.chunks}")
        return False
    return True


def _file_dim(file: Path) -> int:
    import faiss

    return faiss.read_index(str(file)).d
