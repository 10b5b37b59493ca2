"""multilingual-e5-small in ONNX Runtime: the e5-torch model exported once to an ONNX graph.

The same converted folder (rag/models/e5_convert.py), tokenizer, windows, length-sorted batches and
pooling as `e5-torch` (this class only swaps the encoder), but the BertModel runs as an ONNX graph on
ONNX Runtime's CPU kernels: more passages/s than PyTorch's float32 path on a CPU with the same vectors
(SciFact / CMRC2018 unchanged: docs/embed_levers.md), and no torch import once the graph exists.

At first use the graph is exported with torch.onnx (TorchScript exporter, which needs the `onnx`
package) into `<converted folder>/onnx/model.onnx`, checked against PyTorch on a padded batch, and
renamed into place, so a crash leaves either no file or a whole one. quantize="int8" writes
`onnx/model-int8.onnx` beside it with onnxruntime's dynamic int8 quantization of the MatMul weights:
faster, but its vectors are not the fp32 model's, so it has its own name (not in E5_FAMILY).
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from rag.models.e5_torch_embedder import E5TorchEmbedder

#: bump when the exported graph changes (inputs, opset, what it computes): older files are exported again
EXPORT_VERSION = 1
OPSET = 17


def onnx_path(folder: Path, quantize: str = "none") -> Path:
    suffix = "" if quantize == "none" else f"-{quantize}"
    return folder / "onnx" / f"model-v{EXPORT_VERSION}{suffix}.onnx"


def export(folder: Path, target: Path) -> Path:
    """Export the BertModel in `folder` to `target` (last hidden state for input_ids + attention_mask, batch
    and length dynamic), check it against PyTorch, and rename it into place."""
    import torch
    from transformers import BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = BertModel.from_pretrained(str(folder), add_pooling_layer=False, dtype=torch.float32,
                                      attn_implementation="sdpa").eval()

    class Encoder(torch.nn.Module):
        def __init__(self, bert) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    # the check: PyTorch's output on padded rows of another length than the traced batch, computed
    # before the export (after it, this module itself gave other values on padded rows; the graph did not)
    check_ids = torch.tensor([[0, 5, 6, 7, 8, 9, 2, 1, 1, 1, 1, 1], [0, *range(30, 40), 2], [0, 40, 2, *[1] * 9]])
    check_mask = (check_ids != 1).long()
    with torch.no_grad():
        want = model(input_ids=check_ids, attention_mask=check_mask).last_hidden_state.numpy()
    ids = torch.tensor([[0, 10, 11, 12, 13, 14, 15, 2], [0, 20, 21, 22, 23, 24, 25, 2]])
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():  # the TorchScript exporter's notes on traced Python conditions
            warnings.simplefilter("ignore")
            torch.onnx.export(Encoder(model), (ids, torch.ones_like(ids)), tmp, input_names=["input_ids", "attention_mask"],
                              output_names=["last_hidden_state"], opset_version=OPSET, dynamo=False,
                              dynamic_axes={n: {0: "batch", 1: "length"} for n in ("input_ids", "attention_mask", "last_hidden_state")})
        got = _session(Path(tmp), 1).run(None, {"input_ids": check_ids.numpy(), "attention_mask": check_mask.numpy()})[0]
        m = check_mask.numpy()[..., None]
        if not np.allclose(got * m, want * m, atol=1e-3):
            raise RuntimeError(f"{target}: the exported graph differs from PyTorch by {np.abs((got - want) * m).max():.2g}")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def quantize_int8(source: Path, target: Path) -> Path:
    """onnxruntime's dynamic int8 quantization of the MatMul weights, written atomically."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        quantize_dynamic(str(source), tmp, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # one graph at a time: its operators run in order
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class E5OnnxEmbedder(E5TorchEmbedder):
    name = "e5-onnx:multilingual-e5-small-q4"
    #: batches cut at 1024 padded tokens: 21.4 passages/s against 18.2 at 4096 on 2 cores (docs/embed_levers.md)
    CPU_BATCH = (64, 1024)

    def __init__(self, model_dir: str | Path = "data/models", device: str = "cpu", threads: int = 0,
                 batch_size: int | None = None, max_batch_tokens: int | None = None, folder: str | Path | None = None,
                 quantize: str = "none") -> None:
        if device not in ("cpu", "auto"):
            raise ValueError(f"e5-onnx runs on the CPU only, not on {device!r} (use e5-torch for a GPU)")
        super().__init__(model_dir=model_dir, device="cpu", threads=threads, batch_size=batch_size,
                         max_batch_tokens=max_batch_tokens, folder=folder, quantize=quantize)

    @property
    def device(self) -> str:  # type: ignore[override]
        return "cpu"

    def _load_model(self, folder: Path):
        path = onnx_path(folder, "none")
        if not path.exists():
            export(folder, path)
        if self.quantize != "none":
            fp32, path = path, onnx_path(folder, self.quantize)
            if not path.exists():
                quantize_int8(fp32, path)
        try:
            return _session(path, self.threads or os.cpu_count() or 1)
        except Exception as e:  # onnxruntime raises its own exception types
            raise RuntimeError(f"{path}: ONNX Runtime cannot load it ({e}); delete the file to export it again") from e

    def _encode(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        hidden = self._model.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
        m = mask[..., None].astype(np.float32)
        return (hidden * m).sum(1) / m.sum(1)
