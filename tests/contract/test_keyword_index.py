"""Every KeywordIndex implementation must pass these."""
import numpy as np
import pytest

from rag.fs import read_folder_pointer, write_folder_atomically
from rag.index.local.keywords import keyword_index_class
from rag.terms import terms

KINDS = ["bm25s"]
TEXTS = [
    "倒数排名融合把多个检索结果合并成一个排名。",
    "向量检索用嵌入向量的余弦相似度找到语义相近的段落。",
    "The daily meal allowance is 60 euros for travelling employees.",
    "Hotel bookings above 150 euros per night need a manager's approval.",
]


@pytest.fixture(params=KINDS)
def cls(request):
    return keyword_index_class(request.param)


def built(cls):
    return cls.build(np.array([11, 12, 13, 14]), [terms(t) for t in TEXTS])


def test_finds_chinese_words_and_stemmed_english(cls):
    index = built(cls)
    scores, ids = index.search(terms("什么是排名融合？"), 4)
    assert ids[0] == 11 and scores[0] > 0
    _, ids = index.search(terms("allowances for meals"), 4)  # plural → the same stems
    assert ids[0] == 13
    _, ids = index.search(terms("approve hotel booking"), 4)
    assert ids[0] == 14


def test_only_matching_chunks_are_returned(cls):
    index = built(cls)
    scores, ids = index.search(terms("hotel"), 10)
    assert ids.tolist() == [14] and len(scores) == 1
    assert index.search(terms("unknownword 量子"), 10)[1].tolist() == []
    assert index.search([], 10)[1].tolist() == []


def test_remove_hides_ids(cls):
    index = built(cls)
    assert index.remove(np.array([14, 99])) == 1
    assert index.remove(np.array([14])) == 0
    assert index.search(terms("hotel"), 10)[1].tolist() == []
    assert sorted(index.ids().tolist()) == [11, 12, 13]
    assert len(index) == 3


def test_empty_index(cls):
    index = cls.build(np.zeros(0, dtype=np.int64), [])
    assert len(index) == 0
    assert index.search(["x"], 5)[1].tolist() == []


def test_save_load_round_trip_without_pickle(cls, tmp_path):
    index = built(cls)
    index.remove(np.array([12]))
    write_folder_atomically(tmp_path / "keywords.json", index.save, {"kind": "x"})
    folder, info = read_folder_pointer(tmp_path / "keywords.json")
    assert info["kind"] == "x" and folder.is_dir()
    for f in folder.iterdir():  # plain .npy arrays (loadable with allow_pickle=False) and JSON
        assert f.suffix in (".npy", ".json"), f
        if f.suffix == ".npy":
            np.load(f, allow_pickle=False)
    loaded = cls.load(folder)
    assert sorted(loaded.ids().tolist()) == [11, 13, 14]
    for q in ("排名融合", "hotel approval", "meal allowance"):
        a, b = index.search(terms(q), 4), loaded.search(terms(q), 4)
        assert a[1].tolist() == b[1].tolist()
        np.testing.assert_allclose(a[0], b[0], rtol=1e-6)


def test_rewrite_replaces_the_folder(cls, tmp_path):
    index = built(cls)
    pointer = tmp_path / "keywords.json"
    write_folder_atomically(pointer, index.save, {})
    first, _ = read_folder_pointer(pointer)
    write_folder_atomically(pointer, index.save, {})
    second, _ = read_folder_pointer(pointer)
    assert first != second and not first.exists() and second.exists()


def test_built_from_batches_equals_built_at_once(cls):
    """The batched build (ids per batch, as DocStore.iter_terms gives them) ranks exactly like build()."""
    texts = TEXTS + ["", "cat cat dog", "银行 利率 上调", "daily allowance euros"]
    ids = np.arange(len(texts), dtype=np.int64) * 7 + 3
    terms_ = [terms(t) for t in texts]
    whole = cls.build(ids, terms_)
    batched = cls.build_from_batches([(ids[:3], terms_[:3]), (ids[3:], terms_[3:])])
    assert sorted(batched.ids()) == sorted(ids)
    for q in ["cat", "银行利率", "daily euros", "排名融合", "nothing here"]:
        a, b = whole.search(terms(q), 5), batched.search(terms(q), 5)
        assert np.allclose(a[0], b[0]) and list(a[1]) == list(b[1]), q
    assert len(cls.build_from_batches([])) == 0
