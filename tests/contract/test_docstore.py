import numpy as np

from rag.index.local.docstore import DocStore
from rag.types import Chunk, Page


def doc(store, path, sha, texts, replace=None):
    chunks = [Chunk(t, page=1, start=0, end=len(t)) for t in texts]
    vectors = np.arange(len(texts) * 4, dtype=np.float32).reshape(len(texts), 4)
    return store.write_document(path, sha, 10, [Page(1, " ".join(texts))], [True], chunks, vectors, replace)


def test_write_find_and_read_back(tmp_path):
    store = DocStore(tmp_path / "kb.sqlite")
    ids, removed, gen = doc(store, "/a.pdf", "aa" * 32, ["one", "two"])
    assert removed == [] and gen == 1
    assert store.find("/a.pdf").sha256 == "aa" * 32
    assert store.find("aa" * 32).path == "/a.pdf"
    rows = store.chunks(ids)
    assert [rows[i].text for i in ids] == ["one", "two"]
    assert np.array_equal(store.vectors(ids), np.arange(8, dtype=np.float32).reshape(2, 4))
    assert store.counts() == (1, 2)


def test_replace_and_delete_remove_every_row(tmp_path):
    store = DocStore(tmp_path / "kb.sqlite")
    old_ids, _, _ = doc(store, "/a.pdf", "aa" * 32, ["one", "two"])
    new_ids, removed, gen = doc(store, "/a.pdf", "bb" * 32, ["three"], replace=store.find("/a.pdf"))
    assert removed == old_ids and gen == 2
    assert min(new_ids) > max(old_ids)  # ids are never reused
    assert store.chunks(old_ids) == {}
    removed, gen = store.delete_document(store.find("/a.pdf"))
    assert removed == new_ids and gen == 3
    assert store.counts() == (0, 0)
    assert store.documents() == []


def test_copy_reuses_chunks_and_vectors(tmp_path):
    store = DocStore(tmp_path / "kb.sqlite")
    ids, _, _ = doc(store, "/a.pdf", "aa" * 32, ["one", "two"])
    copy_ids, _, _ = store.copy_document(store.find("/a.pdf"), "/b.pdf")
    assert len(copy_ids) == 2 and set(copy_ids).isdisjoint(ids)
    assert np.array_equal(store.vectors(copy_ids), store.vectors(ids))
    assert [d.path for d in store.documents()] == ["/a.pdf", "/b.pdf"]


def test_iter_vectors_and_ids_cover_everything(tmp_path):
    store = DocStore(tmp_path / "kb.sqlite")
    for n in range(5):
        doc(store, f"/{n}.pdf", f"{n:02d}" * 32, ["x", "y", "z"])
    ids = np.concatenate([i for i, _ in store.iter_vectors(batch=4)])
    assert np.array_equal(ids, store.chunk_ids())
    assert len(ids) == 15


def test_failed_transaction_leaves_nothing(tmp_path):
    store = DocStore(tmp_path / "kb.sqlite")
    chunks = [Chunk("a", 1, 0, 1)]
    try:
        store.write_document("/a.pdf", "aa" * 32, 1, [Page(1, "a")], [True], chunks, np.zeros((2, 4), np.float32))
    except ValueError:
        pass
    assert store.counts() == (0, 0)
    assert store.generation() == 0
