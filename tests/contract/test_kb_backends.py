"""The KnowledgeBase contract on every storage backend (issue 20): the local folder, Milvus through
milvus-lite in this process, and Milvus through milvus-lite's gRPC server on 127.0.0.1 (the network
client path a Milvus cluster is reached by), started and stopped here."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from conftest import EN_PAGES, ZH_PAGES, free_port, write_meals_xlsx
from rag.errors import EmbedderMismatch, KnowledgeBaseLocked, RagError
from rag.kb import KnowledgeBase
from rag.models.fakes import FakeEmbedder
from rag.settings import Settings

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

BACKENDS = ["local", "milvus-lite", "milvus-server"]


@pytest.fixture(params=BACKENDS)
def backend_settings(request, tmp_path):
    """Settings of a fresh knowledge base on each backend (fake embedder, small chunks)."""
    base = Settings(embedder="fake", chunk_size=60, chunk_overlap=10)
    if request.param == "local":
        return base
    if request.param == "milvus-lite":
        return base.with_(backend="milvus", milvus_uri=str(tmp_path / "milvus.db"))
    uri = request.getfixturevalue("milvus_server")
    return base.with_(backend="milvus", milvus_uri=uri, milvus_collection=f"t{uuid.uuid4().hex[:12]}")


@pytest.fixture
def open_kb(tmp_path, backend_settings):
    embedder = FakeEmbedder()
    opened = []

    def make(settings=None, emb=None):
        kb = KnowledgeBase(tmp_path / "kb", settings or backend_settings, embedder=emb or embedder)
        opened.append(kb)
        return kb

    make.embedder = embedder
    yield make
    for kb in opened:
        kb.close()


def every_text(kb) -> set[str]:
    """Every passage any retrieval mode returns for a broad query."""
    return {h.text for mode in ("hybrid", "dense", "keyword") for h in kb.search("the a is 的 是 Paris Rome 光合作用", k=100, mode=mode)}


def test_add_then_search_finds_the_right_page(open_kb, docs):
    kb = open_kb()
    report = kb.add([docs])
    assert sorted(p.rsplit("/", 1)[-1] for p in report.added) == ["bio.pdf", "places.pdf"]
    assert report.pages == 4 and report.failed == []
    for mode in ("hybrid", "dense", "keyword"):
        hit = kb.search("Where is the Colosseum?", k=1, mode=mode)[0]
        assert (hit.name, hit.page) == ("places.pdf", 2), mode
    hit = kb.search("线粒体 动力工厂", k=1, mode="keyword")[0]  # Chinese words through the backend's analyzer
    assert (hit.name, hit.page) == ("bio.pdf", 2)
    assert kb.index.counts() == (2, report.chunks)


def test_reopen_gives_the_same_hits(open_kb, docs):
    kb = open_kb()
    kb.add([docs])
    before = [(h.chunk_id, round(h.score, 5)) for h in kb.search("Eiffel Tower Paris", k=3)]
    kb.close()
    assert [(h.chunk_id, round(h.score, 5)) for h in open_kb().search("Eiffel Tower Paris", k=3)] == before


def test_unchanged_skipped_changed_replaced(open_kb):
    kb = open_kb()
    kb.add_texts(["苹果是一种水果。", "Carrots are vegetables."], sources=["fruit", "veg"])
    calls = open_kb.embedder.calls
    assert kb.add_texts(["苹果是一种水果。"], sources=["fruit"]).skipped == ["fruit"]
    assert open_kb.embedder.calls == calls  # content-hash skip: nothing embedded again
    old_ids = kb.index.chunk_ids().tolist()
    assert kb.add_texts(["香蕉也是水果。"], sources=["fruit"]).replaced == ["fruit"]
    texts = every_text(kb)
    assert not any("苹果" in t for t in texts) and any("香蕉" in t for t in texts)
    assert len(kb.documents()) == 2 and kb.index.counts() == (2, 2)
    assert set(kb.index.chunk_ids().tolist()) - set(old_ids)  # the replacement has new ids


def test_a_deleted_document_is_never_retrieved_again(open_kb, docs):
    kb = open_kb()
    kb.add([docs])
    gone = kb.index.chunk_ids_of(kb.index.find(str(docs / "places.pdf")).id)
    assert kb.remove("places.pdf") == [str(docs / "places.pdf")]
    assert kb.remove("places.pdf") == []
    assert not any("Colosseum" in t or "Eiffel" in t for t in every_text(kb))
    assert kb.index.chunks(gone) == {}
    assert not set(gone) & set(kb.index.chunk_ids().tolist())
    _, ids = kb.index.dense(np.stack([open_kb.embedder.embed_query("Colosseum Rome")]), 100)
    assert not set(gone) & set(ids.ravel().tolist())
    assert not set(gone) & set(kb.index.keyword("Colosseum Rome Eiffel", 100)[1].tolist())
    assert [d.path for d in kb.documents()] == [str(docs / "bio.pdf")]
    kb.close()
    kb = open_kb()  # also after reopening
    assert not any("Colosseum" in t for t in every_text(kb))
    bio = kb.documents()[0]
    assert kb.remove(bio.sha256[:12]) == [bio.path]
    assert kb.documents() == [] and kb.index.counts() == (0, 0)
    assert kb.search("光合作用") == []


def test_same_bytes_under_another_name_reuse_the_embeddings(open_kb, docs):
    kb = open_kb()
    kb.add([docs])
    calls = open_kb.embedder.calls
    shutil.copy(docs / "bio.pdf", docs / "bio-copy.pdf")
    assert kb.add([docs]).added == [str(docs / "bio-copy.pdf")]
    assert open_kb.embedder.calls == calls
    assert {h.name for h in kb.search("线粒体 动力工厂", k=2)} == {"bio.pdf", "bio-copy.pdf"}
    infos = {d.path.rsplit("/", 1)[-1]: d for d in kb.documents()}
    assert infos["bio-copy.pdf"].sha256 == infos["bio.pdf"].sha256 and infos["bio-copy.pdf"].pages == 2


def test_a_reader_sees_what_another_writer_committed(open_kb, docs):
    reader, writer = open_kb(), open_kb()
    assert reader.search("Colosseum") == []
    writer.add([docs])
    assert reader.search("Colosseum Rome", k=1)[0].name == "places.pdf"
    writer.remove("places.pdf")
    assert all(h.name != "places.pdf" for h in reader.search("Colosseum Rome", k=5))


def test_another_embedder_or_dimension_is_refused(open_kb, backend_settings):
    kb = open_kb()
    kb.add_texts(["hello"])
    kb.close()
    with pytest.raises(EmbedderMismatch, match="RAG_EMBEDDER=fake"):
        open_kb(emb=FakeEmbedder(dim=32))
    same_name_other_dim = FakeEmbedder(dim=32)
    same_name_other_dim.name = FakeEmbedder().name
    with pytest.raises(EmbedderMismatch, match="dim"):
        open_kb(emb=same_name_other_dim).add_texts(["another text"])


def test_search_results_agree_with_the_local_backend(open_kb, backend_settings, tmp_path):
    """The same texts give the same dense ranking and cosines on every backend (same vectors, exact search)."""
    texts = [f"Document {i} about {w}" for i, w in enumerate(["rivers", "mountains", "deserts", "forests", "lakes", "islands"])]
    kb = open_kb()
    kb.add_texts(texts, sources=[f"s{i}" for i in range(len(texts))])
    local = KnowledgeBase(tmp_path / "local", Settings(embedder="fake", chunk_size=60, chunk_overlap=10), embedder=FakeEmbedder())
    local.add_texts(texts, sources=[f"s{i}" for i in range(len(texts))])
    for q in ("mountains", "lakes and islands"):
        got = [(h.source, round(h.dense, 4)) for h in kb.search(q, k=len(texts), mode="dense")]
        want = [(h.source, round(h.dense, 4)) for h in local.search(q, k=len(texts), mode="dense")]
        assert dict(got) == dict(want)  # the same cosine for every passage
        assert [x for _, x in got] == [x for _, x in want]  # in the same order (ties may swap)
    local.close()


def test_deleting_a_knowledge_base_removes_its_folder_and_its_collections(tmp_path, backend_settings):
    from rag import library

    root = tmp_path / "library"
    path = library.create_kb(root, "kb one", backend_settings)
    with KnowledgeBase(path, backend_settings, embedder=FakeEmbedder()) as kb:
        kb.add_texts(["Deleted together with its knowledge base."], sources=["doomed.txt"])
        prefix = kb.index.name if backend_settings.backend == "milvus" else ""  # the Milvus collections' prefix
    library.delete_kb(root, "kb one", backend_settings)  # opens the store the folder's manifest names
    assert list(root.iterdir()) == []  # no folder, no renamed leftover
    if backend_settings.backend == "milvus":
        from pymilvus import MilvusClient

        client = MilvusClient(uri=backend_settings.milvus_uri)
        try:
            assert not [c for c in client.list_collections() if c.startswith(prefix)]
        finally:
            client.close()
    again = library.create_kb(root, "kb one", backend_settings)  # the name is free, and the new one is empty
    with KnowledgeBase(again, backend_settings, embedder=FakeEmbedder()) as kb:
        assert kb.documents() == []


# ---------------------------------------------------------------------------- Milvus only
@pytest.fixture
def milvus_kb(open_kb, backend_settings):
    if backend_settings.backend != "milvus":
        pytest.skip("Milvus backend only")
    return open_kb()


def test_hybrid_is_milvus_rrf_with_our_constant(milvus_kb):
    from rag.retrieve import rrf

    kb = milvus_kb
    kb.add_texts(EN_PAGES + ZH_PAGES, sources=["e1", "e2", "z1", "z2"])
    q = "Eiffel Tower in Paris"
    qvec = kb.retriever.embed_query(q)
    _, dense_ids = kb.index.dense(qvec[None], 10)
    _, kw_ids = kb.index.keyword(q, 10)
    want = rrf([dense_ids[0][dense_ids[0] >= 0], kw_ids], [1.0, 1.0], kb.settings.rrf_k)
    got = kb.index.hybrid(qvec, q, 10, kb.settings.rrf_k)
    assert sorted(round(x, 6) for _, x in got) == sorted(round(x, 6) for _, x in want)
    assert {i for i, _ in got} == {i for i, _ in want}
    assert kb.search(q, k=1)[0].source == "e1"


def test_a_writer_that_dies_midway_leaves_no_half_document(milvus_kb, monkeypatch):
    kb = milvus_kb
    kb.add_texts(["Kept text about rivers."], sources=["kept"])
    index = kb.index
    real_upsert = index.client.upsert

    def die_before_commit(name, rows, **kw):
        if name == index.docs_c and any(r.get("status") == "committed" for r in rows):
            raise ConnectionError("writer died")
        return real_upsert(name, rows, **kw)

    monkeypatch.setattr(index.client, "upsert", die_before_commit)
    with pytest.raises(ConnectionError):
        kb.add_texts(["Half written text about volcanoes. " * 3], sources=["half"])
    monkeypatch.setattr(index.client, "upsert", real_upsert)
    # the chunks are in Milvus, but no reader sees them
    assert index.client.query(index.chunks_c, filter='path == "half"', output_fields=["count(*)"])[0]["count(*)"] > 0
    assert not any("volcanoes" in t for t in every_text(kb))
    assert [d.path for d in kb.documents()] == ["kept"] and kb.index.counts() == (1, 1)
    assert kb.index.find("half") is None
    # the next writer removes what was left, and the file can be ingested again
    assert kb.add_texts(["Half written text about volcanoes."], sources=["half"]).added == ["half"]
    assert index.client.query(index.chunks_c, filter='path == "half"', output_fields=["count(*)"])[0]["count(*)"] == 1
    assert kb.search("volcanoes", k=1)[0].source == "half"


def test_a_crash_mid_bulk_write_leaves_none_of_its_documents_visible(milvus_kb, monkeypatch):
    """Many small documents go into Milvus in one bulk write (one insert of all their chunks, one upsert
    that commits them): a writer dying between the two shows none of them, and the next writer removes them."""
    kb = milvus_kb
    kb.add_texts(["Kept text about rivers."], sources=["kept"])
    index = kb.index
    real_insert, real_upsert = index.client.insert, index.client.upsert
    chunk_inserts = []

    def counting_insert(name, rows, **kw):
        if name == index.chunks_c:
            chunk_inserts.append(len(rows))
        return real_insert(name, rows, **kw)

    def die_before_commit(name, rows, **kw):
        if name == index.docs_c and any(r.get("status") == "committed" for r in rows):
            raise ConnectionError("writer died")
        return real_upsert(name, rows, **kw)

    monkeypatch.setattr(index.client, "insert", counting_insert)
    monkeypatch.setattr(index.client, "upsert", die_before_commit)
    names = [f"volcano{i}" for i in range(12)]
    with pytest.raises(ConnectionError):
        kb.add_texts([f"Volcano number {i} erupted in year {1900 + i}." for i in range(12)], sources=names)
    monkeypatch.setattr(index.client, "upsert", real_upsert)
    assert chunk_inserts == [12]  # one insert for the chunks of all twelve documents
    stored = index.client.query(index.chunks_c, filter=f"path in {names}", output_fields=["path"])
    assert {r["path"] for r in stored} == set(names)  # written, but no reader sees any of them
    assert not any("Volcano" in t for t in every_text(kb))
    assert [d.path for d in kb.documents()] == ["kept"] and kb.index.counts() == (1, 1)
    assert all(kb.index.find(n) is None for n in names)
    kb.add_texts(["Another text about lakes."], sources=["lakes"])  # the next writer cleans up first
    assert index.client.query(index.chunks_c, filter=f"path in {names}", output_fields=["path"]) == []
    assert index.client.query(index.docs_c, filter='status != "committed"', output_fields=["id"]) == []
    assert sorted(d.path for d in kb.documents()) == ["kept", "lakes"]


def test_the_same_source_twice_in_one_call_keeps_the_later_text(open_kb):
    """Documents wait to be written in bulk; a source named again in the same call replaces the waiting one."""
    kb = open_kb()
    report = kb.add_texts(["Old text about apples.", "Pears are sweet.", "New text about bananas."], sources=["a", "p", "a"])
    assert report.added == ["a", "p"] and report.replaced == ["a"]
    assert kb.index.counts() == (2, 2)
    texts = every_text(kb)
    assert any("bananas" in t for t in texts) and not any("apples" in t for t in texts)


def test_a_second_writer_is_refused_while_the_first_holds_the_lease(milvus_kb, open_kb):
    other = open_kb()
    with milvus_kb.index.writing():
        with pytest.raises(KnowledgeBaseLocked, match="being written by another process"):
            other.add_texts(["x"])
    assert other.add_texts(["x"]).added


def test_a_dead_writers_lease_is_taken_over_at_once_a_live_ones_is_not(milvus_kb, open_kb):
    """A writer killed mid-write leaves its lease (until its time runs out). On this machine a writer whose
    process is gone is provably dead: the next writer takes over at once. One on another machine, or one still
    running here, keeps it until it runs out."""
    import json as json_

    from rag.index.milvus import store as milvus_store

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    until = time.time() + milvus_store.LEASE_S
    lease = {"owner": f"{socket.gethostname()}:{dead.pid}:1:deadbeef", "until": until}
    milvus_kb.index.set_meta({"writer": json_.dumps(lease)})
    other = open_kb()
    assert other.add_texts(["Taken over from a dead writer."]).added  # at once, not after the lease's time
    for owner in (f"elsewhere.example:{os.getpid()}:1:cafe", f"{socket.gethostname()}:{os.getpid()}:"
                  f"{milvus_store.process_start(os.getpid())}:cafe"):  # another machine; a live process here
        milvus_kb.index.set_meta({"writer": json_.dumps({"owner": owner, "until": time.time() + milvus_store.LEASE_S})})
        with pytest.raises(KnowledgeBaseLocked, match="being written by another process"):
            other.add_texts(["refused"])
    milvus_kb.index.set_meta({"writer": json_.dumps({"owner": "elsewhere.example:1:1:cafe", "until": time.time() - 1})})
    assert other.add_texts(["After the lease ran out."]).added
    assert milvus_store.LEASE_S <= 60


def test_unreachable_server_is_a_clear_error_naming_the_uri(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    settings = Settings(embedder="fake", backend="milvus", milvus_uri=uri, milvus_timeout_s=2)
    t = time.monotonic()
    with pytest.raises(RagError, match=f"cannot reach Milvus at {uri}"):
        KnowledgeBase(tmp_path / "kb", settings, embedder=FakeEmbedder())
    assert time.monotonic() - t < 30
    assert not (tmp_path / "kb").exists() or not any((tmp_path / "kb").iterdir())  # nothing written locally


def test_another_process_serves_what_this_one_wrote(milvus_kb, backend_settings, tmp_path):
    """A stateless serving process: opens the collections a writer left (a restarted milvus-lite opens them
    released, so they are loaded on open) and searches them."""
    milvus_kb.add_texts(EN_PAGES + ZH_PAGES, sources=["e1", "e2", "z1", "z2"])
    milvus_kb.close()
    script = (
        "import sys; from rag.kb import KnowledgeBase; from rag.settings import Settings; from rag.models.fakes import FakeEmbedder\n"
        f"s = Settings(embedder='fake', chunk_size=60, chunk_overlap=10, backend='milvus', milvus_uri={backend_settings.milvus_uri!r}, "
        f"milvus_collection={backend_settings.milvus_collection!r})\n"
        f"kb = KnowledgeBase({str(tmp_path / 'kb')!r}, s, embedder=FakeEmbedder())\n"
        "print(kb.search('线粒体 动力工厂', k=1, mode='keyword')[0].source, kb.index.counts())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "z2 (4, 4)"


def test_unequal_weights_fuse_client_side(milvus_kb, monkeypatch):
    """Milvus's RRF ranker has no weights: with dense_weight != keyword_weight the two rankings are fused by
    rag.retrieve.rrf with the weights, as on the local backend."""
    kb = milvus_kb
    kb.add_texts(EN_PAGES + ZH_PAGES, sources=["e1", "e2", "z1", "z2"])
    kb.configure(dense_weight=2.0, keyword_weight=0.5)

    def no_hybrid(*a, **kw):
        raise AssertionError("hybrid_search used with unequal weights")

    monkeypatch.setattr(kb.index, "hybrid", no_hybrid)
    hits = kb.search("Colosseum Rome", k=10)
    assert hits[0].source == "e2"
    _, dense_ids = kb.index.dense(kb.retriever.embed_query("Colosseum Rome")[None], 50)
    keyword_ids = kb.index.keyword("Colosseum Rome", 50)[1].tolist()
    top = int(dense_ids[0][0])
    want = 2.0 / (kb.settings.rrf_k + 1) + (0.5 / (kb.settings.rrf_k + keyword_ids.index(top) + 1) if top in keyword_ids else 0.0)
    assert [h.score for h in hits if h.chunk_id == top] == [pytest.approx(want)]


def test_places_of_non_pdf_parts_survive_every_backend(open_kb, tmp_path):
    """A sheet's rows keep their place ("Meals rows 2-3") on each backend, as on the local one."""
    folder = tmp_path / "sheets"
    folder.mkdir()
    write_meals_xlsx(folder / "meals.xlsx")
    kb = open_kb()
    assert kb.add([folder]).failed == []
    hit = kb.search("Harbin Xiamen meal allowance", k=1)[0]
    assert (hit.name, hit.place) == ("meals.xlsx", "Meals rows 2-3")


def test_the_title_view_reaches_both_views_and_never_the_text(open_kb):
    """Every chunk is indexed (BM25 and vectors) with its document's title in front; the stored text is its own."""
    kb = open_kb()
    body = " ".join(f"Sentence {i} says the cells divide after injury and the tissue grows back." for i in range(30))
    kb.add_texts(["Zebrafish fin regeneration\n" + body, "Invoices\n" + "Pay each invoice within thirty days. " * 30],
                 sources=["fish", "bills"])
    assert kb.views == {"title": True}
    hits = kb.search("zebrafish", k=50, mode="keyword")
    fish = [h for h in hits if h.source == "fish"]
    assert len(fish) > 2  # the title's word finds chunks whose text does not hold it
    assert sum(h.text.startswith("Zebrafish") for h in fish) == 1
    deep = [h for h in fish if not h.text.startswith("Zebrafish")]
    assert np.allclose(kb.index.vectors([deep[0].chunk_id])[0],
                       FakeEmbedder().embed_passages(["Zebrafish fin regeneration\n" + deep[0].text])[0], atol=1e-6)
