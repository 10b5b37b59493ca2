"""scripts/gpu_bench.py ships the e5 model to a GPU machine cut down to the vocabulary rows its chunks use:
the rebuilt folder must embed those chunks as the full model does (float16 weights aside)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["Aspirin irreversibly inhibits cyclooxygenase.", "北京是中华人民共和国的首都。",
         "新西兰鸲鹟（Petroica australis）是新西兰特有的鸟类。", "Transformers use self-attention. " * 60]


def gpu_bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", ROOT / "scripts" / "gpu_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_packed_model_embeds_its_chunks_as_the_full_model_does(e5_torch_folder, tmp_path):
    from rag.models.e5_torch_embedder import E5TorchEmbedder

    gb = gpu_bench()
    used, total = gb.pack(e5_torch_folder, TEXTS, tmp_path / "pack")
    assert 4 < used < total // 100  # a few hundred rows of 250k
    size = sum(p.stat().st_size for p in (tmp_path / "pack").iterdir())
    assert size < 60 * 2**20, size  # travels within the device tool's 64 MiB with the working tree
    gb.rebuild(tmp_path / "model", tmp_path / "pack")
    full = E5TorchEmbedder(folder=e5_torch_folder, device="cpu").embed_passages(TEXTS)
    rebuilt = E5TorchEmbedder(folder=tmp_path / "model", device="cpu").embed_passages(TEXTS)
    assert ((full * rebuilt).sum(1) > 0.9995).all()  # float16 rounding only
    other = E5TorchEmbedder(folder=tmp_path / "model", device="cpu").embed_passages(["Ünïcödé words never packed: ζεύγος"])
    assert np.isfinite(other).all()  # unknown rows are zero, not garbage
