"""The Store contract (rag/index/base.py), method by method, on every backend: the local folder (SQLite +
FAISS + BM25), Milvus through milvus-lite in this process, and Milvus through milvus-lite's gRPC server
(the network path a Milvus cluster is reached by). The stores are used directly, as the KnowledgeBase,
the Ingestor, the Retriever and the LangChain vector store use them."""
from __future__ import annotations

import hashlib
import inspect
import json
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from rag.errors import EmbedderMismatch, KnowledgeBaseLocked
from rag.index import open_store
from rag.index.base import Store
from rag.index.records import ChunkRow, EmbeddedDoc, StoredDoc
from rag.models.fakes import FakeEmbedder
from rag.settings import Settings
from rag.terms import terms
from rag.types import Chunk, DocumentInfo, Page

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

EMBEDDER = FakeEmbedder()
DIM = EMBEDDER.dim
TEXTS = {
    "rivers.txt": ["The Nile is the longest river in Africa.", "The Amazon carries the most water of any river."],
    "zh.txt": ["线粒体是细胞的动力工厂。", "光合作用把光能转化为化学能。"],
}


@pytest.fixture(params=["local", "milvus-lite", "milvus-server"])
def settings(request, tmp_path) -> Settings:
    base = Settings(embedder="fake", chunk_size=60, chunk_overlap=10)
    if request.param == "local":
        return base
    if request.param == "milvus-lite":
        return base.with_(backend="milvus", milvus_uri=str(tmp_path / "milvus.db"))
    return base.with_(backend="milvus", milvus_uri=request.getfixturevalue("milvus_server"),
                      milvus_collection=f"t{uuid.uuid4().hex[:12]}")


@pytest.fixture
def open_(tmp_path, settings):
    """Open the store of one knowledge base folder (again); every store opened is closed after the test."""
    opened: list[Store] = []

    def make(path: Path | None = None) -> Store:
        store = open_store(path or tmp_path / "kb", settings, dim=DIM)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def embedded(path: str, texts: list[str], replace: StoredDoc | None = None, *, sha: str | None = None,
             terms_given=None) -> EmbeddedDoc:
    chunks = [Chunk(t, page=1, start=0, end=len(t)) for t in texts]
    sha = sha or hashlib.sha256("\n".join([path, *texts]).encode()).hexdigest()
    return EmbeddedDoc(path, sha, 100, [Page(1, " ".join(texts))], chunks,
                       EMBEDDER.embed_passages(texts), replace, terms=terms_given)


def filled(open_) -> Store:
    store = open_()
    store.claim_embedder(EMBEDDER.name, "fake", lambda stored: stored == EMBEDDER.name)
    with store.writing():
        store.commit_many([embedded(path, texts) for path, texts in TEXTS.items()])
        store.flush()
    return store


def test_capabilities_are_declared(open_, settings):
    store = open_()
    assert isinstance(store, Store)
    assert store.native_hybrid is (settings.backend == "milvus")
    assert store.commit_rows == (2000 if settings.backend == "milvus" else 0)
    assert isinstance(store.vector_kind, str) and store.vector_kind


def test_what_built_it_is_claimed_once_and_kept(open_, settings):
    store = open_()
    assert store.get_meta("embedder") is None and store.stored_dim() is None
    store.claim_embedder(EMBEDDER.name, "fake", lambda stored: stored == EMBEDDER.name)
    assert store.get_meta("embedder") == EMBEDDER.name and store.get_meta("embedder_spec") == "fake"
    assert store.claim_splitter({"chunk_size": 60}, {"chunk_size": 60, "chunk_overlap": 10}) == {"chunk_size": 60, "chunk_overlap": 10}
    assert store.claim_views({"title": True}) == {"title": True}
    store.set_meta({"note": "kept"})
    store.close()
    again = open_()
    assert again.get_meta("note") == "kept"
    assert again.splitter_config == {"chunk_size": 60, "chunk_overlap": 10} and again.views == {"title": True}
    assert again.claim_splitter({"chunk_size": 99}, {"chunk_size": 99}) == {"chunk_size": 60, "chunk_overlap": 10}
    assert again.claim_views({"title": False}) == {"title": True}
    assert again.meta_json("views") == {"title": True} and again.possible_views({"title": True}) == {"title": True}
    again.splitter_config = None
    again.read_claims()
    assert again.splitter_config == {"chunk_size": 60, "chunk_overlap": 10}
    with pytest.raises(EmbedderMismatch, match="RAG_EMBEDDER=fake"):
        again.claim_embedder("another", "another", lambda stored: False)


def test_the_vector_size_is_recorded_by_the_first_commit_and_checked(open_):
    store = filled(open_)
    assert store.stored_dim() == DIM
    store.check_dim(DIM)
    store.record_dim(DIM)
    with pytest.raises(EmbedderMismatch, match="dim"):
        store.check_dim(DIM + 1)
    with pytest.raises(EmbedderMismatch, match="dim"), store.writing():
        store.commit("other.txt", "f" * 64, 1, [Page(1, "x")], [Chunk("x", 1, 0, 1)], np.ones((1, DIM + 1), np.float32), None)


def test_a_fresh_store_records_the_size_it_is_given(open_):
    store = open_()
    store.keep_dim(DIM)
    assert store.stored_dim() == DIM


def test_commit_then_read_back_every_way(open_):
    store = filled(open_)
    assert store.counts() == (2, 4)
    docs = store.documents()
    assert [d.path for d in docs] == ["rivers.txt", "zh.txt"] and all(isinstance(d, DocumentInfo) for d in docs)
    rivers = store.find("rivers.txt")
    assert isinstance(rivers, StoredDoc) and store.find(rivers.sha256) == rivers and store.find_by_sha(rivers.sha256) == rivers
    assert store.find("missing.txt") is None
    assert store.resolve("rivers.txt") == [rivers] and store.resolve(rivers.sha256[:10]) == [rivers]
    ids = store.chunk_ids()
    assert len(ids) == 4 and list(ids) == sorted(ids)
    assert sorted(store.vector_ids().tolist()) == ids.tolist()
    own = store.chunk_ids_of(rivers.id)
    rows = store.chunks(own)
    assert all(isinstance(r, ChunkRow) for r in rows.values())
    assert [rows[i].text for i in own] == TEXTS["rivers.txt"] and {r.path for r in rows.values()} == {"rivers.txt"}
    assert np.allclose(store.vectors(own), EMBEDDER.embed_passages(TEXTS["rivers.txt"]), atol=1e-6)
    batches = list(store.iter_vectors(batch=3))
    assert [len(i) for i, _ in batches] == [3, 1]
    assert np.concatenate([i for i, _ in batches]).tolist() == ids.tolist()
    assert np.allclose(np.concatenate([v for _, v in batches]), store.vectors(ids), atol=1e-6)


def test_dense_keyword_and_hybrid_find_the_right_chunk(open_):
    store = filled(open_)
    nile = store.chunk_ids_of(store.find("rivers.txt").id)[0]
    qvec = EMBEDDER.embed_query("longest river Africa Nile")
    scores, ids = store.dense(qvec[None], 2)
    assert ids.shape == (1, 2) and ids[0][0] == nile and scores[0][0] >= scores[0][1]
    scores, ids = store.keyword("Nile Africa", 3)
    assert ids[0] == nile and scores[0] > 0
    assert store.keyword(terms("线粒体 动力"), 1)[1].tolist() == store.chunk_ids_of(store.find("zh.txt").id)[:1]
    if store.native_hybrid:
        fused = store.hybrid(qvec, "Nile Africa", 3, 20.0)
        assert fused[0][0] == nile and fused[0][1] == pytest.approx(2 / 21)
    else:
        with pytest.raises(NotImplementedError, match="native_hybrid"):
            store.hybrid(qvec, "Nile Africa", 3, 20.0)


def test_terms_given_with_a_commit_are_what_bm25_reads(open_):
    store = open_()
    with store.writing():
        store.commit_many([embedded("t.txt", ["plain words here"], terms_given=[["zebrafish"]])])
        store.flush()
    assert len(store.keyword("zebrafish", 5)[1]) == 1
    assert len(store.keyword("plain words", 5)[1]) == 0


def test_copy_replace_and_delete(open_):
    store = filled(open_)
    rivers = store.find("rivers.txt")
    with store.writing():
        assert store.copy(rivers, "rivers-copy.txt", None) == 2
        copy = store.find("rivers-copy.txt")
        assert copy.sha256 == rivers.sha256 and copy.id != rivers.id
        assert [r.text for r in store.chunks(store.chunk_ids_of(copy.id)).values()] == TEXTS["rivers.txt"]
        old = store.chunk_ids_of(store.find("zh.txt").id)
        store.commit("zh.txt", "e" * 64, 5, [Page(1, "新的文字。")], [Chunk("新的文字。", 1, 0, 5)],
                     EMBEDDER.embed_passages(["新的文字。"]), store.find("zh.txt"))
        assert store.find("zh.txt").sha256 == "e" * 64 and store.chunks(old) == {}
        store.delete(rivers)
        store.flush()
    assert store.find("rivers.txt") is None and store.chunks(store.chunk_ids_of(rivers.id)) == {}
    assert store.counts() == (2, 3)
    assert set(store.chunk_ids().tolist()) == set(store.vector_ids().tolist())
    _, ids = store.dense(EMBEDDER.embed_query("Nile")[None], 10)
    assert set(ids[0][ids[0] >= 0].tolist()) == set(store.chunk_ids().tolist())


def test_one_writer_at_a_time(open_):
    store, other = open_(), open_()
    with store.writing():
        with pytest.raises(KnowledgeBaseLocked, match="another process"):
            with other.writing():
                pass
        failed: list[Exception] = []

        def second_task() -> None:
            try:
                with store.writing():
                    pass
            except KnowledgeBaseLocked as e:
                failed.append(e)

        thread = threading.Thread(target=second_task)
        thread.start()
        thread.join()
        assert "another task in this program" in str(failed[0])
    with other.writing():  # free again
        pass
    with store.process_lock():  # the lock across processes alone (writing() adds the one across threads)
        with pytest.raises(KnowledgeBaseLocked, match="another process"), other.writing():
            pass


def test_originals_are_kept_whole_for_stored_documents_only(open_):
    store = filled(open_)
    long_text = "长文" * 40000  # over one Milvus VARCHAR field: kept in parts
    store.keep_originals({"rivers.txt": ("whole rivers", json.dumps({"k": 1})), "zh.txt": (long_text, "{}"),
                          "never-stored": ("x", "{}")})
    got = store.originals(["rivers.txt", "zh.txt", "never-stored", "unknown"])
    assert got == {"rivers.txt": ("whole rivers", '{"k": 1}'), "zh.txt": (long_text, "{}")}
    store.keep_originals({"rivers.txt": ("replaced", "{}")})
    assert store.originals(["rivers.txt"]) == {"rivers.txt": ("replaced", "{}")}
    with store.writing():
        store.delete(store.find("zh.txt"))
    assert store.originals(["zh.txt"]) == {}
    store.drop_originals(["rivers.txt"])
    assert store.originals(["rivers.txt"]) == {}
    assert open_(store.path / "other-kb").originals(["rivers.txt"]) == {}  # none kept yet: nothing, no error


def test_flush_writes_the_manifest_and_rebuild_counts_the_vectors(open_, settings):
    store = filled(open_)
    manifest = json.loads((store.path / ("milvus.json" if settings.backend == "milvus" else "manifest.json")).read_text())
    assert manifest["counts"] == {"documents": 2, "chunks": 4} and manifest["embedder"]["dim"] == DIM
    assert store.rebuild() == 4
    store.close()
    assert open_().counts() == (2, 4)


def test_the_writer_may_nest_writes_and_another_thread_waits_in_line(open_):
    store, other = open_(), open_()
    with store.writing():
        with store.writing():  # the same thread: one write (upload files stored, ingested, settled)
            store.commit_many([embedded("rivers.txt", TEXTS["rivers.txt"])])
        with pytest.raises(KnowledgeBaseLocked, match="another process"), other.writing():
            pass  # still held for other processes after the nested write ended
        done: list[int] = []

        def wait_then_write() -> None:
            with store.writing(wait_s=30):
                done.append(1)

        waiter = threading.Thread(target=wait_then_write)
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive() and not done  # waits in line for this thread's write
    waiter.join(30)
    assert done == [1]


def test_recover_brings_what_a_dead_writer_left_up_to_date(open_, settings):
    store = filled(open_)
    with store.writing():
        store.commit_many([embedded("late.txt", ["Written after the last flush, then the writer died."])])
    store.close()  # no flush: the derived files (local) are behind kb.sqlite, as after kill -9
    again = open_()
    with again.writing():
        again.recover()
    assert again.counts() == (3, 5)
    assert again.keyword("writer died flush", 1)[1].tolist() == again.chunk_ids_of(again.find("late.txt").id)
    if settings.backend == "local":
        from rag.index.local.check import check_kb

        assert check_kb(store.path, repair=False, settings=settings).problems == []


def test_drop_removes_what_lives_outside_the_folder(open_, settings):
    store = filled(open_)
    with store.writing():
        store.drop()
    store.close()
    if settings.backend == "milvus":  # the collections are gone from the server
        from pymilvus import MilvusClient

        client = MilvusClient(uri=settings.milvus_uri)
        try:
            assert not [c for c in client.list_collections() if c.startswith(store.name)]
        finally:
            client.close()


def test_every_store_method_is_exercised_here():
    """The tests above call every public method and property of the contract (so a new one needs a test)."""
    source = Path(__file__).read_text(encoding="utf-8").split("def test_every_store_method_is_exercised_here")[0]
    public = {name for name, _ in inspect.getmembers(Store) if not name.startswith("_")}
    declared = {"native_hybrid", "commit_rows", "format", "fresh_start"}  # capabilities and constants
    missing = sorted(name for name in public - declared if f".{name}" not in source)
    assert not missing, f"Store methods no contract test calls: {missing}"
