"""create_app(settings): the FastAPI application of the HTTP API, its limits and its errors.

Every error is JSON in OpenAI's shape, {"error": {"message", "type", "code"}}, never a traceback.
The OpenAPI page is served at /docs.
"""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi_offline import FastAPIOffline
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from rag import library
from rag.errors import DiskFull, GeneratorStopped, KnowledgeBaseExists, KnowledgeBaseLocked, RagError
from rag.server import chat, manage
from rag.server.auth import ApiError, error_response
from rag.server.state import Busy, NotFound, ServerState
from rag.server.tokens import TokenFileError
from rag.settings import Settings

log = logging.getLogger("rag.server")


class BodyTooLarge(StarletteHTTPException):
    """Raised while the body arrives (an HTTPException, so FastAPI's body parsing passes it on)."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail)


class Limits:
    """ASGI middleware: a POST must have the content type of its route (multipart/form-data for an
    upload, application/json elsewhere: else 415) and a body under the limit (else 413), counted as
    it arrives whatever Content-Length says."""

    def __init__(self, app, json_bytes: int, upload_bytes: int, routes: list) -> None:
        self.app, self.json_bytes, self.upload_bytes, self.routes = app, json_bytes, upload_bytes, routes

    async def __call__(self, scope, receive, send):
        # the API takes bodies by POST only; a POST to a route without one is the router's 405, not a 415
        if scope["type"] != "http" or scope["method"] != "POST" or "POST" not in allowed_methods(self.routes, scope):
            return await self.app(scope, receive, send)
        upload = scope["path"].rstrip("/").endswith("/documents")
        headers = Headers(scope=scope)
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        wanted = "multipart/form-data" if upload else "application/json"
        if ctype != wanted:
            return await error_response(415, f"content type {ctype or '(none)'!r} not accepted: send {wanted}",
                                        code="unsupported_media_type")(scope, receive, send)
        limit = self.upload_bytes if upload else self.json_bytes
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            return await error_response(413, f"request body of {int(length)} bytes is over the limit of {limit} bytes",
                                        code="request_too_large")(scope, receive, send)
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(f"request body over the limit of {limit} bytes")
            return message

        await self.app(scope, limited, send)


def allowed_methods(routes: list, scope) -> set[str]:
    """The methods of every route whose path matches the request's (Starlette's own 405 names only the
    first such route's, and RFC 9110's Allow must list them all)."""
    methods: set[str] = set()
    for route in routes:
        match, _ = route.matches(scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return methods


PATTERN_FORMS = {"name": f"knowledge-base name: {library.NAME_RULE}", "query": "query: it holds nothing but spaces",
                 "doc": "document id: use the id (sha256) GET .../documents lists, or its first 8 or more characters"}


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        if err.get("type") == "json_invalid":
            return f"malformed JSON: {err.get('ctx', {}).get('error', err.get('msg'))}"
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        field = str((err.get("loc") or ("",))[-1])
        if err.get("type") == "string_pattern_mismatch" and field in PATTERN_FORMS:
            parts.append(f"{err.get('input')!r} is not a usable {PATTERN_FORMS[field]}")  # not the regex
            continue
        parts.append(f"{where or 'body'}: {err.get('msg')}")
    return "invalid request: " + "; ".join(parts)


ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type"],
    "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                   "code": {"type": ["string", "null"]}, "param": {"type": ["string", "null"]}}}}}
ERRORS = {"400": "invalid request (a body or parameter the API cannot use; also what FastAPI would call 422)",
          "401": "missing, invalid or revoked bearer token", "403": "the token may not do this",
          "404": "no such knowledge base, model or document", "500": "internal error (details in the server log)"}
ERRORS_BY_METHOD = {"post": {"413": "request body over the limit", "415": "wrong content type"}}
ERRORS_BY_PATH = {"/v1/chat/completions": {"429": "too many chat requests waiting (Retry-After)",
                                           "503": "the model stayed busy or stopped (Retry-After)"}}


def documented_errors(schema: dict) -> dict:
    """The OpenAPI document with what the API really answers: every error status each operation can give
    (one JSON shape, see ERROR_SCHEMA) instead of FastAPI's 422 (validation errors are 400 here), and the
    bearer token every operation takes (the API is open only when no token is configured, on loopback)."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                          "description": "python -m rag token create"}}
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            errors = {**ERRORS, **ERRORS_BY_METHOD.get(method, {}), **ERRORS_BY_PATH.get(path, {})}
            if method == "delete" or (method == "post" and path.startswith("/v1/knowledge_bases")):
                errors["409"] = "the knowledge base is being written or in use (Retry-After), or already exists"
                errors["507"] = "no space left on the knowledge base's disk"
            for status, what in errors.items():
                responses[status] = {"description": what,
                                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            op["security"] = [{"bearer": []}]
    return schema


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API over the library of knowledge bases beside `settings.kb` (as the app uses)."""
    settings = settings or Settings()
    state = ServerState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        state.close()

    # the /docs page with Swagger UI's files served by the app itself: it works offline (FastAPI's loads them from a CDN)
    app = FastAPIOffline(title="rag-kb HTTP API", version="1", lifespan=lifespan,
                  description="OpenAI-compatible chat with citations over knowledge bases of PDFs; "
                  "knowledge-base and document management. `model` names the knowledge base.")
    app.state.rag = state
    app.include_router(chat.router)
    app.include_router(manage.router)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.type, exc.code)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound):
        return error_response(404, str(exc), code="not_found")

    @app.exception_handler(KnowledgeBaseExists)
    async def exists(request: Request, exc: KnowledgeBaseExists):  # its name, not the server's folder
        return error_response(409, f"knowledge base {exc.name!r} already exists", code="already_exists")

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy):
        return error_response(exc.status, str(exc), "rate_limit_error" if exc.status == 429 else "server_busy",
                              "queue_full" if exc.status == 429 else "queue_timeout", headers={"Retry-After": "5"})

    @app.exception_handler(KnowledgeBaseLocked)
    async def locked(request: Request, exc: KnowledgeBaseLocked):
        return error_response(409, str(exc), code="knowledge_base_busy", headers={"Retry-After": "5"})

    @app.exception_handler(DiskFull)
    async def disk_full(request: Request, exc: DiskFull):  # an upload reports it per file instead (200)
        return error_response(507, str(exc), "server_error", "disk_full")

    @app.exception_handler(TokenFileError)
    async def token_file(request: Request, exc: TokenFileError):
        log.error("%s", exc)
        return error_response(500, "the server's token file is unreadable; see the server log", "server_error", "token_file")

    @app.exception_handler(GeneratorStopped)
    async def model_stopped(request: Request, exc: GeneratorStopped):  # the next request starts a new worker
        return error_response(503, str(exc), "server_error", "model_stopped", headers={"Retry-After": "1"})

    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError):
        return error_response(400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return error_response(400, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        codes = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
        headers = exc.headers
        if exc.status_code == 405:  # the Allow header RFC 9110 asks for, every method of the path
            headers = {**(headers or {}), "Allow": ", ".join(sorted(allowed_methods(routes, request.scope)))}
        return error_response(exc.status_code, str(exc.detail), code=codes.get(exc.status_code), headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, f"internal error ({type(exc).__name__}); see the server log", "server_error")

    # every route, the routers' own included (FastAPI wraps an included router in one opaque route)
    routes = [r for r in app.router.routes if getattr(r, "methods", None)] + chat.router.routes + manage.router.routes
    base_openapi = app.openapi

    def openapi() -> dict:
        if not app.openapi_schema:
            app.openapi_schema = documented_errors(base_openapi())
        return app.openapi_schema

    app.openapi = openapi
    app.add_middleware(Limits, json_bytes=int(settings.serve_max_body_mb * 2**20),
                       upload_bytes=int(settings.serve_max_upload_mb * 2**20), routes=routes)
    origins = [o.strip() for o in settings.serve_cors_origins.split(",") if o.strip()]
    if origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["*"], allow_headers=["*"])  # outermost: errors carry CORS headers too
    return app
