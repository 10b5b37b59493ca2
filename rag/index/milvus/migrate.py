"""Copy a local knowledge base (the folder's kb.sqlite) into Milvus: `python -m ingest --migrate --to milvus`.

Documents, pages and chunks are copied with their stored embeddings (nothing is parsed or embedded
again), in bulk: the documents of up to MilvusStore.commit_rows chunks through one MilvusStore.put_many
(their chunks, then their records committed in one write). A
document already in Milvus with the same sha256 is skipped, so an interrupted migration is resumed by
running it again. At the end the counts are verified: documents, chunks, and each document's chunks.
The local folder is only read.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rag.errors import RagError
from rag.index.local.docstore import DocStore
from rag.index.milvus.store import MilvusStore
from rag.settings import Settings


@dataclass
class MigrationReport:
    source: str
    target: str
    copied: int = 0
    skipped: int = 0
    chunks: int = 0
    seconds: float = 0.0
    local_counts: tuple[int, int] = (0, 0)
    milvus_counts: tuple[int, int] = (0, 0)
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.local_counts == self.milvus_counts

    def summary(self) -> str:
        lines = [f"{self.source} -> {self.target}: {self.copied} documents copied ({self.chunks} chunks, vectors "
                 f"included), {self.skipped} already there, in {self.seconds:.1f} s",
                 f"verified: local {self.local_counts[0]} documents / {self.local_counts[1]} chunks, "
                 f"Milvus {self.milvus_counts[0]} / {self.milvus_counts[1]}: {'equal' if self.ok else 'DIFFERENT'}"]
        lines += [f"  {m}" for m in self.mismatches[:20]]
        return "\n".join(lines)


def migrate_to_milvus(path: str | Path, settings: Settings, *, progress: Callable[[int, int], None] | None = None) -> MigrationReport:
    """Copy the local knowledge base in `path` to the Milvus of `settings` (milvus_uri, milvus_collection)."""
    path = Path(path)
    if not (path / "kb.sqlite").is_file():
        raise RagError(f"{path}: no local knowledge base here (kb.sqlite is missing)")
    store = DocStore(path / "kb.sqlite")
    target = None
    try:
        name, spec = store.get_meta("embedder"), store.get_meta("embedder_spec")
        dim = int(store.get_meta("dim") or 0)
        if not name or not dim:
            raise RagError(f"{path}: holds no embedded chunks yet; nothing to migrate")
        target = MilvusStore(path, settings.with_(backend="milvus"), dim=dim)
        target.claim_embedder(name, spec or name, lambda stored: stored == name)
        splitter = store.get_meta("splitter")
        if splitter:
            config = json.loads(splitter)
            target.claim_splitter({k: config.get(k) for k in ("chunk_size", "chunk_overlap")}, config)
        views = store.get_meta("views")  # the chunks' leads travel with them: the views stay as built
        target.claim_views(json.loads(views) if views else {"title": False})
        report = MigrationReport(str(path), target.where, local_counts=store.counts())
        t = time.perf_counter()
        docs = store.documents()
        with target.writing():
            group: list[tuple] = []
            group_chunks = 0

            def write_group() -> None:
                nonlocal group_chunks
                target.put_many(group)
                report.copied += len(group)
                report.chunks += group_chunks
                group.clear()
                group_chunks = 0

            for n, info in enumerate(docs, 1):
                local = store.find(info.path)
                there = target.find_by_path(info.path)
                if there is not None and there.sha256 == info.sha256:
                    report.skipped += 1
                else:
                    ids = store.chunk_ids_of(local.id)
                    rows = store.chunks(ids)
                    group.append((info.path, info.sha256, store.size(local.id), info.pages, info.empty_pages,
                                  [(r.page, r.page_label, r.start, r.end, r.text, r.place, r.lead) for r in (rows[i] for i in ids)],
                                  store.vectors(ids), there, info.added_at))
                    group_chunks += len(ids)
                    if group_chunks >= target.commit_rows:
                        write_group()
                if progress is not None:
                    progress(n, len(docs))
            if group:
                write_group()
            target.flush()
        report.seconds = time.perf_counter() - t
        report.milvus_counts = target.counts()
        by_path = {d.path: d for d in target.documents()}
        for info in docs:
            got = by_path.get(info.path)
            if got is None:
                report.mismatches.append(f"{info.path}: missing in Milvus")
            elif (got.sha256, got.chunks, got.pages) != (info.sha256, info.chunks, info.pages):
                report.mismatches.append(f"{info.path}: Milvus holds sha {got.sha256[:12]}, {got.chunks} chunks, "
                                         f"{got.pages} pages; local {info.sha256[:12]}, {info.chunks}, {info.pages}")
            elif len(target.chunk_ids_of(target.find_by_path(info.path).id)) != info.chunks:
                report.mismatches.append(f"{info.path}: the chunk rows in Milvus differ from its record")
        return report
    finally:
        store.close()
        if target is not None:
            target.close()
