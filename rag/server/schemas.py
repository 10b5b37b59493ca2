"""Request bodies of the HTTP API (OpenAI's shapes where OpenAI has one). Fields OpenAI clients send
that do not apply here (n=1, top_p, user, ...) are accepted and ignored."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rag.library import NAME_PATTERN, NAME_RULE


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """The message's text (the text parts of a list content, joined)."""
        if isinstance(self.content, list):
            return "\n".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = Field(False, description="a last chunk (no choices) with the usage, before [DONE]")


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=64, description="the knowledge base's name (GET /v1/models)")
    messages: list[Message] = Field(min_length=1, max_length=200)
    stream: bool = False
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stream_options: StreamOptions | None = None


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=64, description="the knowledge base whose embedder is used")
    input: str | list[str] = Field(description="a text or up to 256 texts (token arrays are not accepted)")
    encoding_format: Literal["float", "base64"] = "float"
    input_type: Literal["query", "passage"] = Field(
        "passage", description="extra: e5 models embed questions ('query') and stored passages ('passage') differently")


class CreateKnowledgeBase(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN,
                      description=NAME_RULE)


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, pattern=r"\S", description="the question or words to look for (not blank)")
    k: int = Field(5, ge=1, le=50)
    mode: Literal["hybrid", "dense", "keyword"] | None = None
