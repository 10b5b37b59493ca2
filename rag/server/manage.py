"""Knowledge bases and their documents: list / create / delete knowledge bases (admin token),
upload documents (multipart, several files, with the app's checks) returning the ingest report,
list and delete documents (write token), and search (read token). Calls rag.library only."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, File, Path as PathParam, Request, UploadFile

from rag import library
from rag.server.auth import ApiError, authorize, token_of
from rag.server.schemas import CreateKnowledgeBase, SearchRequest
from rag.server.state import NotFound, ServerState

router = APIRouter(prefix="/v1/knowledge_bases", tags=["knowledge bases"])


def _state(request: Request) -> ServerState:
    return request.app.state.rag


def _summary(state: ServerState, name: str) -> dict:
    with state.using(name) as kb:
        docs = kb.documents()
    return {"name": name, "documents": len(docs), "chunks": sum(d.chunks for d in docs)}


@router.get("", summary="The knowledge bases this token may read")
def list_kbs(request: Request) -> dict:
    state = _state(request)
    info = token_of(request)
    data = []
    for name in state.names():
        if info is None or info.allows(name, "read"):
            try:
                data.append(_summary(state, name))
            except NotFound:  # deleted meanwhile
                pass
    return {"data": data}


@router.post("", status_code=201, summary="Create an empty knowledge base (admin)")
def create_kb(body: CreateKnowledgeBase, request: Request) -> dict:
    state = _state(request)
    authorize(request, None, "admin")
    name = state.create(body.name)
    return _summary(state, name)


@router.delete("/{kb}", summary="Delete a knowledge base and its stored files (admin)")
def delete_kb(kb: str, request: Request) -> dict:
    state = _state(request)
    authorize(request, None, "admin")
    state.delete(kb)
    return {"name": kb, "deleted": True}


@router.get("/{kb}/documents", summary="The documents of a knowledge base")
def documents(kb: str, request: Request) -> dict:
    authorize(request, kb, "read")
    with _state(request).using(kb) as base:
        docs = base.documents()
    return {"data": [{"id": d.sha256, "file": Path(d.path).name, "pages": d.pages, "chunks": d.chunks,
                      "empty_pages": list(d.empty_pages), "added_at": d.added_at} for d in docs]}


@router.post("/{kb}/documents", summary="Upload PDFs (multipart field `files`, several allowed); the ingest report")
def upload(kb: str, request: Request, files: list[UploadFile] = File(..., min_length=1, description="PDF files")) -> dict:
    authorize(request, kb, "write")
    state = _state(request)
    limit = int(state.settings.max_file_mb * 2**20)
    uploads = [(f.filename or "document.pdf", f.file.read(limit + 1)) for f in files]  # one byte over shows "too large"
    with state.using(kb) as base:  # waits in line behind another write of this knowledge base (409 past serve_write_wait_s)
        return library.ingest_uploads(base, uploads, wait_s=state.settings.serve_write_wait_s)


@router.delete("/{kb}/documents/{doc}", summary="Delete a document (its id, or a prefix of 8+ characters)")
def delete_document(kb: str, request: Request, doc: str = PathParam(
        pattern="^[0-9a-fA-F]{8,64}$", description="the id (sha256) GET .../documents lists, or its first 8+ characters")) -> dict:
    authorize(request, kb, "write")
    state = _state(request)
    with state.using(kb) as base:
        removed = library.remove_document(base, doc.lower(), wait_s=state.settings.serve_write_wait_s)
    if not removed:
        raise NotFound(f"no document {doc!r} in knowledge base {kb!r}")
    return {"deleted": [Path(p).name for p in removed]}


@router.post("/{kb}/search", summary="The passages closest to a query, with scores, file and page")
def search(kb: str, body: SearchRequest, request: Request) -> dict:
    state = _state(request)
    authorize(request, kb, "read")
    limit = state.settings.serve_max_message_chars
    with state.using(kb) as base:  # an unknown knowledge base is 404 before anything is said of the body
        if not body.query.strip():
            raise ApiError(400, "the query is empty", code="empty_query")
        if len(body.query) > limit:
            raise ApiError(400, f"the query is too long: {len(body.query)} characters (limit {limit})", code="query_too_long")
        hits = base.search(body.query, k=body.k, mode=body.mode)
    return {"data": [{"text": h.text, "score": h.score, "similarity": h.similarity, "file": h.name, "page": h.page,
                      "page_label": h.page_label, "chunk_id": h.chunk_id} for h in hits]}
