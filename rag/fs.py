"""Files (a leaf: imports nothing of the project): crash-safe writes (a temporary file beside the
target, fsync, rename over it), file hashes, the one-writer lock, the PDF header check, and the lines
of a worker process's pipe read with a time limit."""
from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

PDF_MAGIC = b"%PDF-"


def looks_like_pdf(head: bytes) -> bool:
    """PDF by its bytes: the '%PDF-' header within the first 1024 bytes (where readers look for it)."""
    return PDF_MAGIC in head[:1024]


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)` and rename the result onto `path`; `path` is either old or new, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write)


def atomic_write_json(path: Path, data: Any) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=2, sort_keys=True)

    atomic_write(path, write)


def fsync_tree(folder: Path) -> None:
    """fsync every file under `folder` (before renaming a folder written in full into place)."""
    for p in Path(folder).rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(Path(folder))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_folder_atomically(pointer: Path, write: Callable[[Path], None], info: dict[str, Any]) -> None:
    """Write a multi-file structure crash-safely: `write(folder)` fills a new folder beside `pointer`,
    then `pointer` (a JSON file naming the folder, plus `info`) is replaced atomically, then older
    folders are removed. A directory cannot be renamed over a non-empty one, hence the pointer."""
    pointer = Path(pointer)
    folder = Path(tempfile.mkdtemp(prefix=f"{pointer.stem}-", dir=pointer.parent))
    try:
        write(folder)
        fsync_tree(folder)
        atomic_write_json(pointer, {**info, "folder": folder.name})
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    for old in pointer.parent.glob(f"{pointer.stem}-*"):
        if old.is_dir() and old != folder:
            shutil.rmtree(old, ignore_errors=True)


def read_folder_pointer(pointer: Path) -> tuple[Path, dict[str, Any]] | None:
    """(folder, info) named by a pointer written by write_folder_atomically, or None when absent."""
    pointer = Path(pointer)
    if not pointer.exists():
        return None
    info = json.loads(pointer.read_text(encoding="utf-8"))
    return pointer.parent / info["folder"], info


class Locked(Exception):
    """Another process holds the lock (raised by exclusive_lock)."""


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an flock on `path` (created when missing) for the block; Locked when another process holds it."""
    import fcntl

    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Locked(str(path)) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class PipeLines:
    """The lines a child process writes to a pipe, each read with a deadline. Written by hand: a buffered
    reader takes several lines in one read and select() then waits for bytes the reader already holds,
    so lines are cut here from raw reads of the file descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = b""

    def read(self, timeout: float) -> bytes | None:
        """The next line (without its newline); None at end of file; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError
            data = os.read(self.fd, 1 << 16)
            if not data:
                return None
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line
