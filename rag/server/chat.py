"""The OpenAI-compatible endpoints: /v1/models, /v1/chat/completions (JSON or server-sent events)
and /v1/embeddings. `model` names the knowledge base. Answers come from KnowledgeBase.stream with
the knowledge base's saved answer settings; the citations and the refusal travel in an extra field,
`rag`, of the message (and of the last stream chunk's delta), which OpenAI clients ignore."""
from __future__ import annotations

import base64
import itertools
import json
import logging
import time
import uuid
from typing import Iterator

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from rag.answer.prompts import HEDGE
from rag.errors import GeneratorStopped
from rag.library import HISTORY_TURNS
from rag.server.auth import ApiError, authorize, error_body, token_of
from rag.server.schemas import ChatRequest, EmbeddingRequest
from rag.server.state import ServerState, Slot
from rag.text import approx_tokens
from rag.types import Answer, AnswerStream

log = logging.getLogger("rag.server")
router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])
MAX_EMBED_INPUTS = 256


def _state(request: Request) -> ServerState:
    return request.app.state.rag


@router.get("/models", summary="The knowledge bases this token may read, as OpenAI models")
def models(request: Request) -> dict:
    state = _state(request)
    info = token_of(request)
    names = [n for n in state.names() if info is None or info.allows(n, "read")]
    return {"object": "list", "data": [_model(state, n) for n in names]}


@router.get("/models/{model}", summary="One knowledge base, as an OpenAI model")
def model(model: str, request: Request) -> dict:
    state = _state(request)
    authorize(request, model, "read")
    state.kb(model)  # 404 when absent
    return _model(state, model)


def _model(state: ServerState, name: str) -> dict:
    created = int((state.root / name).stat().st_mtime) if (state.root / name).exists() else 0
    return {"id": name, "object": "model", "created": created, "owned_by": "rag-kb"}


# ---------------------------------------------------------------------- chat
def conversation(body: ChatRequest, max_chars: int) -> tuple[str, list[tuple[str, str]]]:
    """The question (the last message, from the user) and the history: the earlier user and assistant
    turns, the last HISTORY_TURNS of them, which condense a follow-up as in the app. System messages
    are not used: the knowledge base writes its own instructions."""
    for i, m in enumerate(body.messages):
        if len(m.text()) > max_chars:
            raise ApiError(400, f"messages[{i}] is too long: {len(m.text())} characters (limit {max_chars})",
                           code="message_too_long")
    last = body.messages[-1]
    if last.role != "user":
        raise ApiError(400, f"the last message must be the user's question, not a {last.role!r} message",
                       code="invalid_messages")
    question = last.text().strip()
    if not question:
        raise ApiError(400, "the question (the last message) is empty", code="empty_message")
    history = [(m.role, m.text()) for m in body.messages[:-1] if m.role in ("user", "assistant") and m.text().strip()]
    return question, history[-2 * HISTORY_TURNS:]


def citations(answer: Answer) -> dict:
    """The extra `rag` field: where each [n] of the text comes from, and whether the answer is a refusal."""
    return {
        "citations": [{"n": c.n, "file": c.name, "page": c.page, "page_label": c.page_label, "quote": c.quote,
                       "chunk_id": c.chunk_id} for c in answer.citations],
        "refused": answer.refused,
        "refusal_reason": answer.refusal_reason or None,
        "fallback": answer.fallback or None,
        "question": answer.question,
        "outcome": answer.outcome,  # "answer", "hedged" (given, but the documents may not state it directly) or "refused"
        "answerability": answer.answerability,  # P(answerable) from the model's hidden state; null where not known
        "decided_by": answer.decided_by or None,
    }


def content(answer: Answer) -> str:
    """The message text: the answer, and for a hedged one the hedge on its own line (what a chat client shows)."""
    return f"{answer.text}\n\n{HEDGE[answer.language]}" if answer.hedged else answer.text


@router.post("/chat/completions", summary="Answer the last user message from the knowledge base `model`")
def chat_completions(body: ChatRequest, request: Request):
    state = _state(request)
    authorize(request, body.model, "read")
    settings = state.settings
    kb = state.hold(body.model)  # until the answer ends (a delete of the knowledge base waits for it); 404 first
    try:
        question, history = conversation(body, settings.serve_max_message_chars)
        options = state.options(kb)
        if body.temperature is not None:
            options["temperature"] = body.temperature
        wanted = body.max_completion_tokens or body.max_tokens
        if wanted is not None:
            options["max_new_tokens"] = min(wanted, settings.serve_max_tokens)
    except BaseException:
        state.release(body.model)
        raise
    # 429 / 503 when the model is busy; the slot lets the knowledge base go with it (at once on 429 / 503)
    slot = Slot(state.chat_queue, release=lambda: state.release(body.model))
    try:
        pieces = kb.stream(question, history, options=options)
    except BaseException:
        slot.release()
        raise
    meta = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": body.model}
    if not body.stream:
        try:
            answer = AnswerStream(pieces).result()
        finally:
            slot.release()
        message = {"role": "assistant", "content": content(answer), "refusal": None, "rag": citations(answer)}
        return {**meta, "object": "chat.completion", "system_fingerprint": None,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
                "usage": usage(answer)}
    events = sse(pieces, slot, meta, include_usage=bool(body.stream_options and body.stream_options.include_usage))
    first = next(events)  # from here on the generator's `finally` releases the slot, whenever it ends
    return StreamingResponse(itertools.chain([first], events), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _event(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def usage(answer: Answer) -> dict:
    """The answer's tokens as the generator counted them (0 when no model was asked: a refusal before the model)."""
    prompt, completion = answer.usage.get("prompt_tokens", 0), answer.usage.get("completion_tokens", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def sse(pieces: Iterator, slot: Slot, meta: dict, include_usage: bool = False) -> Iterator[str]:
    """Server-sent events as OpenAI sends them: a role delta, content deltas, a last chunk with
    finish_reason "stop" (and the `rag` field), then [DONE]. The final Answer is authoritative: when
    it withdrew the streamed draft (a refusal, or the evidence quoted instead) its text follows as one
    more delta; its exact text (markers placed after checking) is `rag.text` of the last chunk."""

    def chunk(delta: dict, finish: str | None = None) -> str:
        return _event({**meta, "object": "chat.completion.chunk", "system_fingerprint": None,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]})

    try:
        yield chunk({"role": "assistant", "content": ""})
        stream = AnswerStream(pieces)
        sent: list[str] = []
        for piece in stream:
            sent.append(piece)
            yield chunk({"content": piece})
        answer = stream.result()
        streamed = "".join(sent)
        if answer.text != streamed and (answer.refused or answer.fallback):  # the draft was withdrawn
            yield chunk({"content": "\n\n" + answer.text})
        if answer.hedged:
            yield chunk({"content": "\n\n" + HEDGE[answer.language]})
        yield chunk({"rag": {**citations(answer), "text": answer.text}}, "stop")
        if include_usage:  # OpenAI's stream_options.include_usage: one more chunk, no choices
            yield _event({**meta, "object": "chat.completion.chunk", "system_fingerprint": None, "choices": [],
                          "usage": usage(answer)})
        yield "data: [DONE]\n\n"
    except GeneratorStopped as e:  # the model's worker died or hung: its cause is in the log already
        yield _event(error_body(str(e), "server_error", "model_stopped"))
    except Exception as e:  # mid-stream: the status is sent already; OpenAI sends an error event
        log.exception("chat stream failed")
        yield _event(error_body(f"the answer failed: {type(e).__name__}: {e}", "server_error", "stream_failed"))
    finally:
        slot.release()


# ---------------------------------------------------------------------- embeddings
@router.post("/embeddings", summary="Vectors from the knowledge base `model`'s embedder")
def embeddings(body: EmbeddingRequest, request: Request) -> dict:
    state = _state(request)
    authorize(request, body.model, "read")
    with state.using(body.model) as kb:
        return _embeddings(kb, body, state.settings.serve_max_message_chars)


def _embeddings(kb, body: EmbeddingRequest, limit: int) -> dict:
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    if not texts or len(texts) > MAX_EMBED_INPUTS:
        raise ApiError(400, f"input must hold 1 to {MAX_EMBED_INPUTS} texts, not {len(texts)}", code="invalid_input")
    for i, t in enumerate(texts):
        if not t.strip():
            raise ApiError(400, f"input[{i}] is empty", code="empty_input")
        if len(t) > limit:
            raise ApiError(400, f"input[{i}] is too long: {len(t)} characters (limit {limit})", code="input_too_long")
    if body.input_type == "query":
        vectors = np.stack([np.asarray(kb.embedder.embed_query(t), dtype=np.float32) for t in texts])
    else:
        vectors = np.asarray(kb.embedder.embed_passages(texts), dtype=np.float32)
    data = [{"object": "embedding", "index": i,
             "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode() if body.encoding_format == "base64" else v.tolist()}
            for i, v in enumerate(vectors)]
    tokens = sum(approx_tokens(t) for t in texts)  # estimated: 1 per CJK character, 1 per 4 others
    return {"object": "list", "data": data, "model": body.model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
