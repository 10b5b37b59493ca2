"""Every VectorIndex implementation must pass these."""
import numpy as np
import pytest

from rag.index.local.vectors import load_vector_index, make_vector_index

KINDS = ["faiss-flat-ip", "faiss-ivf-flat"]
DIM = 8


def unit(rows):
    v = np.asarray(rows, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


def test_add_search_returns_ids_best_first(kind):
    index = make_vector_index(kind, DIM)
    vectors = unit(np.eye(DIM)[:4] + 0.01)
    index.add(np.array([10, 20, 30, 40]), vectors)
    scores, ids = index.search(vectors[2], k=2)
    assert ids[0][0] == 30
    assert scores[0][0] >= scores[0][1]
    assert len(index) == 4


def test_remove_makes_ids_unfindable(kind):
    index = make_vector_index(kind, DIM)
    vectors = unit(np.eye(DIM)[:3] + 0.01)
    index.add(np.array([1, 2, 3]), vectors)
    assert index.remove(np.array([2, 99])) == 1
    _, ids = index.search(vectors[1], k=3)
    assert 2 not in ids[0]
    assert sorted(index.ids().tolist()) == [1, 3]


def test_empty_index_search(kind):
    index = make_vector_index(kind, DIM)
    scores, ids = index.search(np.ones(DIM, dtype=np.float32), k=5)
    assert ids.shape == (1, 0)


def test_k_larger_than_size(kind):
    index = make_vector_index(kind, DIM)
    index.add(np.array([5]), unit([np.ones(DIM)]))
    _, ids = index.search(np.ones(DIM, dtype=np.float32), k=10)
    assert ids.tolist() == [[5]]


def test_save_load_roundtrip(kind, tmp_path):
    index = make_vector_index(kind, DIM)
    rng = np.random.default_rng(0)
    vectors = unit(rng.normal(size=(50, DIM)))
    index.add(np.arange(100, 150), vectors)
    index.save(tmp_path / "v.index")
    again = load_vector_index(tmp_path / "v.index", DIM)
    assert again.kind == kind  # the file tells its kind
    assert sorted(again.ids().tolist()) == list(range(100, 150))
    a = index.search(vectors[:5], 3)
    b = again.search(vectors[:5], 3)
    assert np.array_equal(a[1], b[1])
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed away


def test_wrong_dimension_is_refused(kind, tmp_path):
    index = make_vector_index(kind, DIM)
    with pytest.raises(ValueError):
        index.add(np.array([1]), np.ones((1, DIM + 1), dtype=np.float32))
    index.add(np.array([1]), unit([np.ones(DIM)]))
    index.save(tmp_path / "v.index")
    with pytest.raises(ValueError, match="dim"):
        load_vector_index(tmp_path / "v.index", DIM + 1)


def test_ivf_recall_against_exact_search():
    """IVF with the default nprobe finds >= 95% of the exact top 10 on clustered data."""
    from rag.index.local.vectors import FaissIndex

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(50, 32))
    vectors = unit(centres[rng.integers(0, 50, 20000)] + 0.5 * rng.normal(size=(20000, 32)))
    ids = np.arange(20000) * 3
    exact = make_vector_index("faiss-flat-ip", 32)
    exact.add(ids, vectors)
    approx = FaissIndex.build_ivf(32, [(ids[:10000], vectors[:10000]), (ids[10000:], vectors[10000:])])
    assert approx.nlist > 1 and len(approx) == 20000
    queries = unit(centres[rng.integers(0, 50, 100)] + 0.5 * rng.normal(size=(100, 32)))
    truth, found = exact.search(queries, 10)[1], approx.search(queries, 10)[1]
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found)])
    assert recall >= 0.95


def test_ivf_scans_a_tenth_of_its_cells_unless_told():
    from rag.index.local.vectors import FaissIndex

    rng = np.random.default_rng(2)
    vectors = unit(rng.normal(size=(60000, 8)))
    ids = np.arange(60000)
    auto = FaissIndex.build_ivf(8, [(ids, vectors)])
    nlist = auto.nlist
    assert nlist == 979 and auto.probes() == 98  # 4·√60000 cells, a tenth of them scanned
    assert FaissIndex(8, auto.native, nprobe=5).probes() == 5
    assert FaissIndex(8, auto.native, nprobe=5000).probes() == nlist
