"""python -m ingest --migrate --to milvus: a local knowledge base copied into Milvus (milvus-lite here),
vectors included, counts verified; resumable; the local folder untouched."""
from __future__ import annotations

import hashlib

import pytest

from ingest.__main__ import main
from rag.index.milvus.migrate import migrate_to_milvus
from rag.errors import RagError
from rag.kb import KnowledgeBase
from rag.models.fakes import FakeEmbedder
from rag.settings import Settings

pytest.importorskip("milvus_lite")

TEXTS = ["光合作用把光能转化为化学能。", "The Eiffel Tower is in Paris.", "The Colosseum is in Rome. " * 8]


def local_kb(path):
    settings = Settings(embedder="fake", chunk_size=60, chunk_overlap=10)
    kb = KnowledgeBase(path, settings, embedder=FakeEmbedder())
    kb.add_texts(TEXTS, sources=["zh", "paris", "rome"])
    kb.add_texts(["The Eiffel Tower was finished in 1889."], sources=["paris"])  # a replaced document
    kb.save()
    return kb


def folder_digest(path):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir()) if p.is_file()}


def test_migration_copies_vectors_and_verifies_counts(tmp_path):
    kb = local_kb(tmp_path / "kb")
    local_hits = {q: [(h.source, h.page, h.text, round(h.dense, 5)) for h in kb.search(q, k=3, mode="dense")]
                  for q in ("Eiffel Tower", "光合作用", "Rome")}
    counts = kb.index.counts()
    kb.close()
    before = folder_digest(tmp_path / "kb")
    settings = Settings(embedder="fake", backend="milvus", milvus_uri=str(tmp_path / "m.db"))
    report = migrate_to_milvus(tmp_path / "kb", settings)
    assert report.ok and report.copied == 3 and report.skipped == 0
    assert report.local_counts == report.milvus_counts == counts
    after = folder_digest(tmp_path / "kb")
    assert after.pop("milvus.json")  # where the Milvus copy lives, written beside the local files
    assert after == before  # the local knowledge base is only read
    embedder = FakeEmbedder()
    with KnowledgeBase(tmp_path / "kb", settings, embedder=embedder) as migrated:
        assert embedder.calls == 0
        for q, want in local_hits.items():
            assert [(h.source, h.page, h.text, round(h.dense, 5)) for h in migrated.search(q, k=3, mode="dense")] == want
        assert [d.path for d in migrated.documents()] == ["paris", "rome", "zh"]
    again = migrate_to_milvus(tmp_path / "kb", settings)  # resumable: what is there is skipped
    assert again.ok and again.copied == 0 and again.skipped == 3


def test_cli_migrates_and_reports(tmp_path, monkeypatch, capsys):
    local_kb(tmp_path / "kb").close()
    monkeypatch.setenv("RAG_EMBEDDER", "fake")
    monkeypatch.setenv("RAG_MILVUS_URI", str(tmp_path / "m.db"))
    assert main(["--migrate", "--to", "milvus", "--kb", str(tmp_path / "kb")]) == 0
    out = capsys.readouterr().out
    assert "3 documents copied" in out and "equal" in out


def test_migrating_nothing_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(RagError, match="kb.sqlite is missing"):
        migrate_to_milvus(tmp_path / "none", Settings(embedder="fake"))
    assert main(["--migrate", "--kb", str(tmp_path / "none")]) == 1
    assert "kb.sqlite is missing" in capsys.readouterr().err


def test_check_is_for_the_local_folder_only(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RAG_BACKEND", "milvus")
    assert main(["--check", "--kb", str(tmp_path)]) == 2
    assert "local knowledge-base folder" in capsys.readouterr().err


def test_migration_keeps_the_title_view(tmp_path):
    """Each chunk's lead (its document's title) travels with it, so BM25 in Milvus reads it too."""
    settings = Settings(embedder="fake", chunk_size=60, chunk_overlap=10)
    with KnowledgeBase(tmp_path / "kb", settings, embedder=FakeEmbedder()) as kb:
        kb.add_texts(["Zebrafish fin regeneration\n" + "The cells divide after injury and the tissue grows back. " * 20],
                     sources=["fish"])
        local = sorted(h.chunk_id for h in kb.search("zebrafish", k=50, mode="keyword"))
        assert len(local) > 1
    target = settings.with_(backend="milvus", milvus_uri=str(tmp_path / "m.db"))
    assert migrate_to_milvus(tmp_path / "kb", target).ok
    with KnowledgeBase(tmp_path / "kb", target, embedder=FakeEmbedder()) as migrated:
        assert migrated.views == {"title": True}
        assert len(migrated.search("zebrafish", k=50, mode="keyword")) == len(local)
