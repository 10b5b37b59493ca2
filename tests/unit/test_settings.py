"""Settings grouped into sub-models (issue 29) keeps every flat name working: keywords, attributes,
RAG_* environment variables, rag.toml keys, with_(), AnswerOptions; each group reads as its sub-model."""
from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from rag.settings import (ANSWER_FIELDS, AnswerOptions, AnswerSettings, EmbeddingSettings, IndexSettings, IngestSettings,
                          MilvusSettings, RetrievalSettings, ServeSettings, Settings, with_options)

GROUPS = {"embedding": EmbeddingSettings, "ingest": IngestSettings, "index": IndexSettings, "milvus": MilvusSettings,
          "search": RetrievalSettings, "answer": AnswerSettings, "serve": ServeSettings}
#: a value other than the default for one field of each group (and the answer fields another engineer's tests use)
CHANGED = {"embedder": "fake", "chunk_size": 120, "ocr": False, "backend": "milvus", "milvus_uri": "http://10.0.0.1:19530",
           "top_k": 9, "retrieval": "dense", "generator": "fake", "min_score": 0.5, "llm_process": "inline",
           "serve_port": 9000}
ENV = {"embedder": "fake", "chunk_size": "120", "ocr": "false", "backend": "milvus", "milvus_uri": "http://10.0.0.1:19530",
       "top_k": "9", "retrieval": "dense", "generator": "fake", "min_score": "0.5", "llm_process": "inline",
       "serve_port": "9000"}


def test_every_field_is_in_exactly_one_group_or_the_top():
    owners: dict[str, list[str]] = {}
    for name, group in GROUPS.items():
        for field in group.model_fields:
            owners.setdefault(field, []).append(name)
    assert all(len(groups) == 1 for groups in owners.values()), owners
    assert set(Settings.model_fields) - set(owners) == {"kb", "model_dir"}
    assert {"generator", "min_score", "min_score_zh", "llm_process", "llm_timeout_s", "llm_load_timeout_s",
            "openai_api_key", "answer_language"} <= set(AnswerSettings.model_fields)


def test_flat_keywords_and_attributes_and_the_group_views_agree():
    settings = Settings(**CHANGED)
    for name, value in CHANGED.items():
        assert getattr(settings, name) == value
    for attr, group in GROUPS.items():
        view = getattr(settings, attr)
        assert isinstance(view, group)
        assert view.model_dump() == {name: getattr(settings, name) for name in group.model_fields}
    assert settings.answer.generator == "fake" and settings.milvus.milvus_uri == "http://10.0.0.1:19530"
    assert settings.search.top_k == 9 and settings.retrieval == "dense"  # the mode keeps its name; the group reads as search
    with pytest.raises(ValidationError):
        Settings(min_score_zh="not a number")
    with pytest.raises(ValidationError):  # frozen, as before
        settings.top_k = 3


def test_every_field_is_read_from_its_rag_environment_name(monkeypatch):
    for name, field in Settings.model_fields.items():
        default = field.default
        value = default.get_secret_value() if isinstance(default, SecretStr) else default
        monkeypatch.setenv(f"RAG_{name.upper()}", str(value))
    for name, value in ENV.items():
        monkeypatch.setenv(f"RAG_{name.upper()}", value)
    settings = Settings()
    for name, value in CHANGED.items():
        assert getattr(settings, name) == value, name
    assert settings.answer.min_score == 0.5 and settings.serve.serve_port == 9000


def test_rag_toml_keys_stay_flat_and_the_environment_and_keywords_win(tmp_path, monkeypatch):
    toml = tmp_path / "rag.toml"
    toml.write_text('generator = "extractive"\nmin_score = 0.6\nchunk_size = 300\nmilvus_collection = "docs"\n'
                    'serve_port = 9100\n', encoding="utf-8")
    monkeypatch.setenv("RAG_CONFIG", str(toml))
    settings = Settings()
    assert (settings.generator, settings.min_score, settings.chunk_size, settings.milvus_collection, settings.serve_port) == \
        ("extractive", 0.6, 300, "docs", 9100)
    assert settings.ingest.chunk_size == 300 and settings.milvus.milvus_collection == "docs"
    monkeypatch.setenv("RAG_MIN_SCORE", "0.7")
    assert Settings().min_score == 0.7
    assert Settings(min_score=0.8).min_score == 0.8


def test_with_and_answer_options_take_flat_names():
    settings = Settings(generator="fake").with_(min_score=0.4, serve_port=9200, rrf_k=30.0)
    assert (settings.min_score, settings.answer.min_score, settings.serve.serve_port, settings.search.rrf_k) == (0.4, 0.4, 9200, 30.0)
    assert set(AnswerOptions.model_fields) == set(ANSWER_FIELDS)
    answered = with_options(settings, {"min_score": 0.3, "answer_language": "zh", "generator": "extractive"})
    assert (answered.min_score, answered.answer_language, answered.generator) == (0.3, "zh", "extractive")
    with pytest.raises(ValidationError):
        with_options(settings, {"chunk_size": 10})  # not an answer option
