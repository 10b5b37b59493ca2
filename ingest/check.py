"""python -m ingest --check [--kb DIR] [--no-repair]: verify a knowledge base, repair what can be derived.

kb.sqlite is the source of truth; vectors.faiss and manifest.json are derived from it. The check:
  1. SQLite's own integrity check (a damaged source of truth cannot be repaired here: say so);
  2. every document's chunk and page rows match its counts (one transaction wrote them, so a
     mismatch means damage, not a crash), and every chunk has an embedding of the stored dimension;
  3. the ids in vectors.faiss equal the chunk ids (a crash between a commit and the index save
     leaves them behind; opening the knowledge base syncs them too, this reports it);
  4. manifest.json exists, parses, and its counts equal SQLite's.
With repair, the derived files are rebuilt from SQLite (KnowledgeBase.rebuild), under the write lock.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


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
    # read-only connection: checking must not create or change anything
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        return _check(path, conn, report, repair, settings)
    except sqlite3.DatabaseError as e:  # not a database at all, or damaged beyond the integrity check
        report.problems.append(f"kb.sqlite cannot be read: {e}")
        report.fatal = True
        return report


def _check(path: Path, conn: sqlite3.Connection, report: CheckReport, repair: bool, settings) -> CheckReport:
    try:
        result = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if result != ["ok"]:
            report.problems.append("kb.sqlite integrity check: " + "; ".join(result[:5]))
            report.fatal = True
            return report
        report.documents, report.chunks = (conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0],
                                           conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])
        for doc_id, doc_path, want, have in conn.execute(
                "SELECT d.id, d.path, d.chunks, (SELECT COUNT(*) FROM chunks c WHERE c.doc_id=d.id) FROM documents d"):
            if want != have:
                report.problems.append(f"{doc_path}: {have} chunk rows, {want} recorded")
                report.fatal = True
        for doc_path, want, have in conn.execute(
                "SELECT d.path, d.pages, (SELECT COUNT(*) FROM pages p WHERE p.doc_id=d.id) FROM documents d"):
            if want != have:
                report.problems.append(f"{doc_path}: {have} page rows, {want} recorded")
                report.fatal = True
        orphans = conn.execute("SELECT COUNT(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)").fetchone()[0]
        if orphans:
            report.problems.append(f"{orphans} chunks belong to no document")
            report.fatal = True
        dim = conn.execute("SELECT value FROM meta WHERE key='dim'").fetchone()
        if dim is not None:
            bad = conn.execute("SELECT COUNT(*) FROM chunks WHERE length(embedding) != ?", (int(dim[0]) * 4,)).fetchone()[0]
            if bad:
                report.problems.append(f"{bad} chunks have an embedding of the wrong size (dim {dim[0]})")
                report.fatal = True
        chunk_ids = np.fromiter((r[0] for r in conn.execute("SELECT id FROM chunks ORDER BY id")), dtype=np.int64)
    finally:
        conn.close()

    derived_ok = _check_vectors(path, chunk_ids, dim[0] if dim else None, report)
    derived_ok = _check_keywords(path, chunk_ids, report) and derived_ok
    derived_ok = _check_manifest(path, report) and derived_ok
    if repair and not derived_ok and not report.fatal:
        from rag.index.index import Index
        from rag.models.registry import make_embedder
        from rag.settings import Settings

        settings = _settings_for(path, settings or Settings())
        if settings.embedder.startswith("langchain:"):  # a LangChain Embeddings (rag.langchain): no config string
            index = Index(path, settings, dim=int(dim[0]) if dim else 0)  # makes it; the stored vectors suffice
        else:
            embedder = make_embedder(settings)  # cheap: no model is loaded to rebuild from stored vectors
            index = Index(path, settings, dim=embedder.dim, normalized=embedder.normalized)
        try:
            n = index.rebuild()
        finally:
            index.close()
        report.repaired.append(f"rebuilt vectors.faiss ({n} vectors), the keyword index and manifest.json from kb.sqlite")
    return report


def _check_vectors(path: Path, chunk_ids: np.ndarray, dim: str | None, report: CheckReport) -> bool:
    from rag.index.vectors import load_vector_index

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
    from rag.fs import read_folder_pointer
    from rag.index.keywords import keyword_index_class

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


def _settings_for(path: Path, settings):
    """Open with the embedder the knowledge base was built with (the check needs no other)."""
    conn = sqlite3.connect(f"file:{path / 'kb.sqlite'}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='embedder_spec'").fetchone()
    finally:
        conn.close()
    return settings.with_(embedder=row[0]) if row else settings
