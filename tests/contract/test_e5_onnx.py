"""e5-onnx (the e5-torch model exported once to ONNX Runtime) and the int8 variants, against e5-torch fp32."""
import pytest

from rag.models.registry import make_embedder
from rag.settings import Settings

PASSAGES = [
    "The cat sat on the mat.",
    "北京是中华人民共和国的首都，位于华北平原北部。",
    "Aspirin irreversibly inhibits cyclooxygenase; 温度范围 3～5 ℃，ｆｕｌｌｗｉｄｔｈ　ＡＢＣ.",
    "新西兰鸲鹟（Petroica australis）是新西兰特有的鸟类。",  # characters outside the vocabulary
    "Transformers use self-attention. " * 80,  # > 512 tokens: averaged windows
]


def make(spec, folder, **kw):
    return make_embedder(Settings(embedder=f"{spec}:{folder}", device="cpu", threads=2, **kw))


@pytest.fixture(scope="module")
def fp32(e5_torch_folder):
    return make("e5-torch", e5_torch_folder).embed_passages(PASSAGES)


@pytest.mark.slow
def test_onnx_gives_the_torch_vectors_and_writes_one_whole_file(e5_torch_folder, fp32):
    onnx = make("e5-onnx", e5_torch_folder)
    cos = (onnx.embed_passages(PASSAGES) * fp32).sum(1)
    assert cos.min() > 0.9999, cos  # measured 1.0000 (float32 rounding only): docs/embed_levers.md
    assert onnx.device == "cpu" and onnx.opens("e5:multilingual-e5-small-q4")
    assert (onnx.batch_size, onnx.max_batch_tokens) == onnx.CPU_BATCH  # small length-sorted batches on a CPU
    files = sorted(p.name for p in (e5_torch_folder / "onnx").iterdir())
    assert files == ["model-v1.onnx"]  # written under a temporary name and renamed: nothing else left behind


@pytest.mark.slow
@pytest.mark.parametrize("spec, bound", [("e5-onnx-int8", 0.95), ("e5-torch-int8", 0.93)])
def test_int8_vectors_stay_close_but_have_their_own_name(e5_torch_folder, fp32, spec, bound):
    """Bounds below the cosines measured on these passages (onnx-int8 ≥ 0.96, torch-int8 ≥ 0.949; over the
    speed sample of docs/embed_levers.md: its min / mean column)."""
    e = make(spec, e5_torch_folder)
    cos = (e.embed_passages(PASSAGES) * fp32).sum(1)
    assert cos.min() > bound, cos
    assert e.name == f"{spec}:multilingual-e5-small-q4"
    assert not e.opens("e5:multilingual-e5-small-q4")  # never mixed with the fp32 family's knowledge bases or caches


def test_int8_and_onnx_are_cpu_only():
    from rag.models.e5_onnx_embedder import E5OnnxEmbedder
    from rag.models.e5_torch_embedder import E5TorchEmbedder

    with pytest.raises(ValueError, match="CPU only"):
        E5OnnxEmbedder(device="cuda")
    with pytest.raises(ValueError, match="CPU only"):
        E5TorchEmbedder(device="cuda", quantize="int8")
    with pytest.raises(ValueError, match="quantize"):
        E5TorchEmbedder(quantize="int4")
    assert E5TorchEmbedder(device="cuda").name == "e5-torch:multilingual-e5-small-q4"  # the GPU path as it was


def test_registry_names_the_engines():
    names = {spec: make_embedder(Settings(embedder=spec)).name.partition(":")[0]
             for spec in ("e5-onnx", "e5-onnx-int8", "e5-torch-int8")}
    assert names == {"e5-onnx": "e5-onnx", "e5-onnx-int8": "e5-onnx-int8", "e5-torch-int8": "e5-torch-int8"}


@pytest.mark.slow
def test_a_damaged_graph_names_the_file(e5_torch_folder, tmp_path):
    from rag.models.e5_onnx_embedder import E5OnnxEmbedder

    for name in ("config.json", "tokenizer.json"):
        (tmp_path / name).write_bytes((e5_torch_folder / name).read_bytes())
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "model-v1.onnx").write_bytes(b"not a graph")
    with pytest.raises(RuntimeError, match=r"model-v1\.onnx.*delete the file"):
        E5OnnxEmbedder(folder=tmp_path).embed_passages(["hello"])


@pytest.mark.slow
def test_bf16_vectors_stay_in_the_family(e5_torch_folder, fp32):
    """bfloat16 autocast changes the matmuls' rounding only: measured cosine ≥ 0.99998 to float32 over the
    speed sample of docs/embed_levers.md (emulated where the CPU lacks bf16 instructions: slower, same numbers)."""
    e = make("e5-torch-bf16", e5_torch_folder)
    cos = (e.embed_passages(PASSAGES) * fp32).sum(1)
    assert cos.min() > 0.999, cos
    assert e.bf16 and e.name == "e5-torch:multilingual-e5-small-q4" and e.opens("e5:multilingual-e5-small-q4")
    with pytest.raises(ValueError, match="bf16 and quantize"):
        type(e)(quantize="int8", bf16=True)
