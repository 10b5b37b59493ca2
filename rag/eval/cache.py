"""An embedding cache for evaluations: every run of `make eval` / calibration embeds the same
corpora, so vectors are kept in SQLite (text hash → float32 bytes, no pickle) and a re-run only
embeds what is new. It wraps an Embedder and keeps its name, so a knowledge base accepts it."""
from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from rag.models.base import Embedder


class CachingEmbedder(Embedder):
    SLICE = 256
    def __init__(self, inner: Embedder, folder: Path) -> None:
        self.inner = inner
        self.name, self.normalized = inner.name, inner.normalized
        self.device = getattr(inner, "device", "cpu")
        folder.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in inner.name)
        self._db = sqlite3.connect(folder / f"embeddings-{safe}.sqlite", check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS v(key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
        self._lock = threading.Lock()
        self.embedded = 0  # texts that missed the cache (were really embedded)

    @property
    def dim(self) -> int:  # type: ignore[override]
        return self.inner.dim

    def warm_up(self) -> None:
        self.inner.warm_up()

    @staticmethod
    def _key(kind: str, text: str) -> str:
        return hashlib.sha1(f"{kind}\0{text}".encode("utf-8")).hexdigest()

    def _get(self, keys: list[str]) -> dict[str, np.ndarray]:
        out = {}
        with self._lock:
            for k in range(0, len(keys), 900):
                part = keys[k : k + 900]
                rows = self._db.execute(f"SELECT key, vec FROM v WHERE key IN ({','.join('?' * len(part))})", part)
                out.update({key: np.frombuffer(vec, dtype=np.float32) for key, vec in rows})
        return out

    def _put(self, pairs: list[tuple[str, np.ndarray]]) -> None:
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO v(key, vec) VALUES(?,?)",
                                 [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in pairs])
            self._db.commit()

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        keys = [self._key("p", t) for t in texts]
        have = self._get(keys)
        todo = [i for i, k in enumerate(keys) if k not in have]
        for start in range(0, len(todo), self.SLICE):  # saved slice by slice: an interrupted run keeps its work
            part = todo[start : start + self.SLICE]
            vectors = self.inner.embed_passages([texts[i] for i in part])
            self._put([(keys[i], v) for i, v in zip(part, vectors)])
            have.update({keys[i]: v for i, v in zip(part, vectors)})
            self.embedded += len(part)
            if len(todo) > self.SLICE:
                print(f"   embedded {min(start + self.SLICE, len(todo))}/{len(todo)}", flush=True)
        return np.stack([have[k] for k in keys]) if keys else np.zeros((0, self.dim), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        key = self._key("q", text)
        have = self._get([key])
        if key not in have:
            have[key] = np.asarray(self.inner.embed_query(text), dtype=np.float32)
            self._put([(key, have[key])])
        return have[key]

    def close(self) -> None:
        self._db.close()
