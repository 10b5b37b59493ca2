"""Who may do what: the request's bearer token checked against the token store (rag/server/tokens.py),
and the errors every endpoint answers with. The routers (chat.py, manage.py) and the application
(app.py) import this module; it imports none of them."""
from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from rag.server.state import ServerState


class ApiError(Exception):
    """An error answered as {"error": {...}} with an HTTP status."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code = status, message, type_, code


def error_body(message: str, type_: str, code: str | None) -> dict:
    return {"error": {"message": message, "type": type_, "code": code, "param": None}}


def error_response(status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
                   headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, type_, code), status_code=status, headers=headers)


def token_of(request: Request):
    """The request's token (TokenInfo); None when no token is configured (the API is then open, and
    listens on loopback only); 401 without a valid one."""
    state: ServerState = request.app.state.rag
    if not state.tokens.configured():
        return None
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "missing bearer token: send 'Authorization: Bearer <token>' (python -m rag token create)",
                       "authentication_error", "missing_api_key")
    info = state.tokens.check(secret.strip())
    if info is None:
        raise ApiError(401, "invalid or revoked token", "authentication_error", "invalid_api_key")
    return info


def authorize(request: Request, kb: str | None, scope: str):
    """Check the request's bearer token for `scope` on `kb` (None: creating or deleting knowledge
    bases): 401 without a valid token, 403 when it is for another knowledge base or a narrower scope."""
    info = token_of(request)
    if info is not None and not info.allows(kb, scope):
        what = "manage knowledge bases" if kb is None else f"{scope} knowledge base {kb!r}"
        raise ApiError(403, f"this token may not {what} (it is a {info.scope} token for {info.kb!r})",
                       "permission_error", "insufficient_scope")
    return info
