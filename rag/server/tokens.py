"""Bearer tokens of the HTTP API: one knowledge base and a scope each (`read`: chat, search,
embeddings; `write`: that and upload / delete documents), or `admin` (every knowledge base, and
creating / deleting them). A token is shown once when created; the file keeps only its sha256,
compared in constant time. The file is read again whenever it changes, so `python -m rag token
create|revoke` applies to a running server."""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from rag.errors import RagError
from rag.fs import atomic_write_json

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[str, ...] = ("read", "write", "admin")
ALL = "*"  # the knowledge base of an admin token
PREFIX = "rag-"


@dataclass(frozen=True)
class TokenInfo:
    id: str  # short public name of the token (for list / revoke); not the secret
    kb: str  # knowledge-base name, or "*" for an admin token
    scope: str
    sha256: str
    created: str
    label: str = ""

    def allows(self, kb: str | None, scope: str) -> bool:
        """Whether this token may do `scope` on `kb` (None: an action on no one knowledge base)."""
        if self.scope == "admin":
            return True
        if scope == "admin" or kb is None or kb != self.kb:
            return False
        return scope == "read" or self.scope == "write"


class TokenFileError(RagError):
    """The token file cannot be read: every request is refused (never served as if no token existed)."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """The tokens in one JSON file ({"tokens": [...]}, hashes only), written atomically."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int] | None, list[TokenInfo]] = (None, [])

    def tokens(self) -> list[TokenInfo]:
        with self._lock:
            try:
                st = self.path.stat()
                stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
            except FileNotFoundError:
                return []
            if stamp != self._cache[0]:
                self._cache = (stamp, self._read())
            return list(self._cache[1])

    def _read(self) -> list[TokenInfo]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return [TokenInfo(**row) for row in data.get("tokens", [])]
        except (OSError, ValueError, TypeError, AttributeError) as e:
            raise TokenFileError(f"{self.path}: unreadable token file ({type(e).__name__}: {e})") from None

    def _write(self, tokens: list[TokenInfo]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, {"tokens": [asdict(t) for t in tokens]})
        self.path.chmod(0o600)

    def create(self, kb: str, scope: str, label: str = "") -> tuple[str, TokenInfo]:
        """A new token for `kb` ("*" for admin) and `scope`: returns the secret (shown once) and its record."""
        if scope not in SCOPES:
            raise RagError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
        if (scope == "admin") != (kb == ALL):
            raise RagError("an admin token is for every knowledge base ('*'); read and write tokens name one")
        secret = PREFIX + secrets.token_urlsafe(32)
        with self._lock:
            tokens = self._read() if self.path.exists() else []
            ids = {t.id for t in tokens}
            token_id = next(i for i in iter(lambda: secrets.token_hex(4), None) if i not in ids)
            info = TokenInfo(id=token_id, kb=kb, scope=scope, sha256=_digest(secret),
                             created=datetime.now(timezone.utc).isoformat(timespec="seconds"), label=label)
            self._write(tokens + [info])
        return secret, info

    def revoke(self, token_id: str) -> TokenInfo:
        with self._lock:
            tokens = self._read() if self.path.exists() else []
            match = [t for t in tokens if t.id == token_id]
            if not match:
                raise RagError(f"no token with id {token_id!r} in {self.path}")
            self._write([t for t in tokens if t.id != token_id])
        return match[0]

    def check(self, secret: str) -> TokenInfo | None:
        """The token `secret` is, or None. Every stored hash is compared (constant time each)."""
        digest = _digest(secret)
        found = None
        for t in self.tokens():
            if hmac.compare_digest(digest, t.sha256):
                found = t
        return found

    def configured(self) -> bool:
        """Whether any token exists (with none, the API is open, and serves on loopback only)."""
        return bool(self.tokens())
