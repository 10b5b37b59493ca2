"""Several knowledge bases side by side, and what a front end needs around them.

A library is a folder whose sub-folders are knowledge bases (the app uses the parent of
`Settings.kb`, so `data/index/default` sits in the library `data/index`). This module holds the
service logic the Streamlit app (and later an HTTP API) shares: list / create / delete knowledge
bases, the answer preferences saved in each one, storing an uploaded PDF safely inside it, and
removing a document together with its stored file.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import unicodedata
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal

from pydantic import BaseModel, Field, ValidationError

from ingest.formats import SUPPORTED
from rag.errors import DISK_FULL, DiskFull, KnowledgeBaseExists, KnowledgeBaseLocked, RagError, disk_full
from rag.text import HAN_COMMON, HAN_RARE
from rag.fs import atomic_write_bytes, atomic_write_json, file_sha256

if TYPE_CHECKING:
    from rag.kb import KnowledgeBase
    from rag.settings import Settings

log = logging.getLogger(__name__)

PREFS_FILE = "preferences.json"
FILES_DIR = "files"  # uploaded files are kept here so they can be shown and downloaded later
_MARKERS = ("kb.sqlite", "manifest.json", "milvus.json")  # milvus.json: a knowledge base in Milvus (rag/index/milvus/store.py)
_NAME = re.compile(rf"^[\w{HAN_RARE}{HAN_COMMON}](?:[\w{HAN_RARE}{HAN_COMMON} .-]{{0,62}}[\w{HAN_RARE}{HAN_COMMON}-])?$")
# The HTTP API's names: the same shape, its letters spelled out, because "\w" means ASCII to a JSON-Schema
# (ECMA) client and every letter to Python; Latin, Greek, Cyrillic, kana, Hangul and CJK (a subset of _NAME's).
_LETTERS = ("A-Za-z0-9_\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u0391-\u03a1\u03a3-\u03a9\u03b1-\u03c9\u0401\u0410-\u044f\u0451"
            f"\u3041-\u3096\u30a1-\u30fa\uac00-\ud7a3{HAN_RARE}{HAN_COMMON}")
NAME_PATTERN = rf"^[{_LETTERS}](?:[{_LETTERS} .-]{{0,62}}[{_LETTERS}-])?$"
NAME_RULE = ("use up to 64 letters, digits, '-', '_', '.' or spaces, starting with a letter or digit and not ending "
             "in '.' or a space")


# ---------------------------------------------------------------------- knowledge bases
def is_kb(path: Path) -> bool:
    return path.is_dir() and any((path / m).exists() for m in _MARKERS)


def list_kbs(root: str | Path) -> list[str]:
    """Names of the knowledge bases directly under `root`, sorted."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and is_kb(p))


def check_name(name: str) -> str:
    """A knowledge-base name is one folder name: letters, digits, CJK, space, '-', '_', '.'; no path."""
    name = unicodedata.normalize("NFC", name).strip()
    if not _NAME.match(name):
        raise RagError(f"{name!r} is not a usable knowledge-base name: {NAME_RULE}")
    return name


def create_kb(root: str | Path, name: str, settings: "Settings") -> Path:
    """Create an empty knowledge base `root/name` (built with `settings`' embedder and splitter)."""
    from rag.kb import KnowledgeBase

    name = check_name(name)
    path = Path(root) / name
    if path.exists():
        raise KnowledgeBaseExists(f"{path} already exists", name)
    with KnowledgeBase(path, settings) as kb:
        kb.save()
    return path


TRASH_PREFIX = ".deleting-"  # a knowledge base being deleted: renamed first (at once), then removed


def delete_kb(root: str | Path, name: str, settings: "Settings | None" = None, *, kb: "KnowledgeBase | None" = None,
              wait_s: float = 1.0) -> None:
    """Delete the knowledge base `root/name`: everything in its folder (its uploaded files too) and what its
    backend keeps elsewhere (Milvus collections). It is one write: KnowledgeBaseLocked when another process
    writes it (or another thread, after `wait_s`), and then nothing is deleted. The folder is renamed away
    before anything is removed, so a crash midway never leaves a half-deleted knowledge base in the list
    (`sweep` removes the rest). `kb`: the open KnowledgeBase, if the caller has one (else the store is opened)."""
    from rag.index import open_store
    from rag.settings import Settings

    path = Path(root) / check_name(name)
    if path.resolve().parent != Path(root).resolve() or not is_kb(path):
        raise RagError(f"{path} is not a knowledge base")
    if kb is not None:
        store = kb.index
    else:  # the backend its folder shows; dim is unused by a store that is only dropped
        store = open_store(path, _settings_of(path, settings or Settings()), dim=1)
    trash = path.with_name(f"{TRASH_PREFIX}{uuid.uuid4().hex[:12]}")
    try:
        with store.writing(wait_s):
            os.replace(path, trash)
            try:
                store.drop()
            except BaseException:
                os.replace(trash, path)
                raise
    finally:
        if kb is None:
            store.close()
    shutil.rmtree(trash, ignore_errors=True)
    sweep(root)


def _settings_of(path: Path, settings: "Settings") -> "Settings":
    """`settings` with the backend the knowledge base in `path` was written to (its manifest says where)."""
    if (path / "kb.sqlite").exists() or not (path / "milvus.json").exists():
        return settings.model_copy(update={"backend": "local"})
    try:
        where = json.loads((path / "milvus.json").read_text(encoding="utf-8"))["backend"]
        update = {"backend": "milvus", "milvus_uri": where["uri"], "milvus_collection": where["collections"][0].removesuffix("_chunks")}
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError):
        update = {"backend": "milvus"}  # a damaged manifest: the settings' own Milvus
    return settings.model_copy(update=update)


def sweep(root: str | Path) -> None:
    """Remove what deletes interrupted by a crash left (folders renamed to .deleting-*)."""
    root = Path(root)
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(TRASH_PREFIX) and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)


# ---------------------------------------------------------------------- saved preferences
class Preferences(BaseModel):
    """The answer settings a person picks in the app, saved in the knowledge-base folder.
    Only fields that do not change how the knowledge base is built (the embedder and splitter
    are fixed at creation)."""

    answer_passages: int = Field(4, ge=1, le=12)
    answer_language: Literal["auto", "zh", "en"] = "auto"
    generator: str = Field("llamacpp", max_length=300)
    openai_base_url: str = Field("http://127.0.0.1:8000/v1", max_length=500)
    openai_model: str = Field("", max_length=200)

    @classmethod
    def defaults(cls, settings: "Settings") -> "Preferences":
        return cls(**{k: getattr(settings, k) for k in cls.model_fields})


def load_prefs(kb_path: str | Path, settings: "Settings") -> Preferences:
    """The preferences saved in `kb_path`, or the ones `settings` gives (a damaged file is logged and ignored)."""
    file = Path(kb_path) / PREFS_FILE
    base = Preferences.defaults(settings).model_dump()
    if not file.exists():
        return Preferences(**base)
    try:
        saved = json.loads(file.read_text(encoding="utf-8"))
        return Preferences(**{**base, **{k: v for k, v in saved.items() if k in Preferences.model_fields}})
    except (OSError, ValueError, ValidationError, AttributeError) as e:
        log.warning("%s: ignored (%s)", file, e)
        return Preferences(**base)


def save_prefs(kb_path: str | Path, prefs: Preferences) -> None:
    atomic_write_json(Path(kb_path) / PREFS_FILE, prefs.model_dump())


# ---------------------------------------------------------------------- uploaded files
def safe_filename(name: str, suffix: str = ".pdf") -> str:
    """A file name that is safe to create: no folders, no control or shell-special characters,
    no leading dot, at most 120 characters, ending in `suffix`. Letters of any script are kept."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    stem = name[: -len(suffix)] if name.lower().endswith(suffix) else name
    stem = "".join(ch if (ch.isalnum() or ch in " -_.()（）") else "_" for ch in stem)
    stem = re.sub(r"[\s_]+", lambda m: "_" if "_" in m.group() else " ", stem).strip(" ._")
    return (stem[:120] or "document") + suffix


def store_upload(kb_path: str | Path, filename: str, data: bytes, max_mb: float) -> Path:
    """Write an uploaded file into `<kb>/files/` under a sanitised name and return its path. Refuses
    (RagError with the reason) content of a type not read (upload_suffix) whatever its name, and files over `max_mb`.
    An existing file of the same name is kept as `.<name>.previous` until `settle_upload` is called."""
    if len(data) > max_mb * 1024 * 1024:
        raise RagError(f"too large: {len(data) / 2**20:.1f} MB (limit {max_mb:g} MB)")
    if not data:
        raise RagError("empty file")
    suffix = upload_suffix(filename, data)
    folder = (Path(kb_path) / FILES_DIR).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    target = (folder / safe_filename(filename, suffix)).resolve()
    if target.parent != folder:  # cannot happen after safe_filename; checked because it must never happen
        raise RagError(f"refused file name {filename!r}")
    if target.exists():
        os.replace(target, _previous(target))
    atomic_write_bytes(target, data)
    return target


#: file name endings the app's uploader offers (what is read is decided by the bytes: upload_suffix)
UPLOAD_TYPES = sorted(s.lstrip(".") for s in SUPPORTED)


def upload_suffix(filename: str, data: bytes) -> str:
    """The name ending an upload is stored under, from its bytes (ingest.formats.sniff: a zip bomb, a
    macro-enabled or encrypted Office file is refused here with the reason). A name that claims
    one type for bytes of another ("notes.pdf" holding text) is refused: the person meant a file
    they did not send. Text kinds (text, Markdown, CSV, HTML) keep their own ending."""
    from ingest.formats import sniff

    kind = sniff.sniff_bytes(data)  # ParseError (a RagError) with the reason
    ending = Path(unicodedata.normalize("NFC", filename).replace("\\", "/").rsplit("/", 1)[-1]).suffix.lower()
    claimed = sniff.CLAIMED.get(ending)
    if claimed is not None and claimed != kind and not (claimed == sniff.TEXT and kind in sniff.TEXT_KINDS):
        raise RagError(f"not a {sniff.LABELS[claimed]}: the file's bytes are {sniff.LABELS[kind]}")
    return ending if claimed is not None else sniff.SUFFIXES[kind]


def settle_upload(path: Path, ok: bool) -> None:
    """After ingestion: keep the new file if it was ingested (or unchanged); otherwise put back the
    file it replaced, or delete it, so the folder always matches what the knowledge base holds."""
    previous = _previous(path)
    if ok:
        previous.unlink(missing_ok=True)
    elif previous.exists():
        os.replace(previous, path)
    else:
        path.unlink(missing_ok=True)


def _previous(path: Path) -> Path:
    return path.with_name(f".{path.name}.previous")


def recover(kb: "KnowledgeBase") -> None:
    """Put right what a writer killed midway (kill -9, a power cut) left in the knowledge base: its derived
    files brought up to its source of truth (Store.recover), and its folder of uploaded files made to match
    what it holds again: a file replaced by an upload that never committed gets its earlier version back, a
    stored upload that never committed is removed. Done when a front end opens the knowledge base, unless
    another process writes it now (that writer finishes the job)."""
    try:
        with kb.writing(0):
            kb.index.recover()
            _settle_files(kb)
    except KnowledgeBaseLocked:
        pass
    except DiskFull as e:  # it still answers: searches bring the in-memory index up to kb.sqlite themselves
        log.warning("%s: could not put right what a killed writer left: %s", kb.path, e)


def _settle_files(kb: "KnowledgeBase") -> None:
    folder = (kb.path / FILES_DIR).resolve()
    if not folder.is_dir():
        return
    for previous in sorted(folder.glob(".*.previous")):
        path = folder / previous.name[1:].removesuffix(".previous")
        held = _holds(kb, path)
        log.warning("%s: an upload of %s did not finish; %s", kb.path, path.name,
                    "it was stored, its earlier version is removed" if held else "its earlier version is put back")
        settle_upload(path, ok=held)
    for tmp in folder.glob(".*.tmp"):  # a file being written (rag.fs.atomic_write) when the writer died
        tmp.unlink(missing_ok=True)
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith(".") and kb.index.find(str(path)) is None:
            log.warning("%s: removing %s, an upload that did not finish", kb.path, path.name)
            path.unlink()


def remove_document(kb: "KnowledgeBase", path: str, *, wait_s: float = 1.0) -> list[str]:
    """Remove a document from the knowledge base; a file the app stored in `<kb>/files/` goes too (in one
    write: `wait_s` is how long to wait for another thread's write of this knowledge base)."""
    with kb.writing(wait_s):
        removed = kb.remove(path)
        folder = (kb.path / FILES_DIR).resolve()
        for p in removed:
            file = Path(p)
            if file.parent.resolve() == folder and file.is_file():
                file.unlink()
    return removed


def ingest_uploads(kb: "KnowledgeBase", uploads: "list[tuple[str, bytes]]", *,
                   progress: "Callable[..., None] | None" = None, wait_s: float = 1.0) -> dict:
    """Store uploaded files (name, bytes) in the knowledge base's folder with the checks of
    `store_upload`, ingest those that pass in one batch and settle them. Returns the report as plain
    data: rows of {file, outcome (added / replaced / skipped / failed), detail} in upload order, the
    counts per outcome and the batch's pages, chunks and seconds. A refused or failing file is a row;
    the rest of the batch goes on.

    The whole upload is one write of the knowledge base, its files stored only once the writer lock is
    held (a second upload of a same-named file must not replace the file the first is reading):
    another thread's write is waited for up to `wait_s`; KnowledgeBaseLocked (nothing stored) when it
    does not end by then, or when another process (the app, a server, `make ingest`) writes."""
    with kb.writing(wait_s):
        return _ingest_uploads(kb, uploads, progress)


def _holds(kb: "KnowledgeBase", path: Path) -> bool:
    """The knowledge base stores the file at `path` with these very bytes (not an earlier version)."""
    doc = kb.index.find(str(path))
    return doc is not None and path.is_file() and doc.sha256 == file_sha256(path)


def _ingest_uploads(kb: "KnowledgeBase", uploads: "list[tuple[str, bytes]]", progress) -> dict:
    from rag.types import IngestReport

    rows: dict[int, dict] = {}
    stored: dict[str, int] = {}  # stored path -> position of the upload
    names: set[str] = set()
    for i, (name, data) in enumerate(uploads):
        if safe_filename(name) in names:
            rows[i] = {"file": name, "outcome": "failed", "detail": "another file of this upload has the same name"}
            continue
        names.add(safe_filename(name))
        try:
            stored[str(store_upload(kb.path, name, data, kb.settings.max_file_mb))] = i
        except RagError as e:
            rows[i] = {"file": name, "outcome": "failed", "detail": str(e)}
        except OSError as e:  # the reason, not the server's path
            rows[i] = {"file": name, "outcome": "failed",
                       "detail": DISK_FULL if disk_full(e) else f"cannot store the file: {e.strerror or type(e).__name__}"}
    report = IngestReport()
    if stored:
        try:
            report = kb.add(list(stored), progress=progress)
        except RagError as e:  # e.g. the embedder cannot load: nothing of this batch was ingested
            report.failed += [(p, str(e)) for p in stored]
        except BaseException:  # interrupted (or a bug): the folder keeps matching the knowledge base
            for path in stored:
                settle_upload(Path(path), ok=_holds(kb, Path(path)))
            raise
    failed = dict(report.failed)
    for path in stored:
        settle_upload(Path(path), ok=path not in failed)
    warnings = dict(report.warnings)
    for outcome, paths in (("added", report.added), ("replaced", report.replaced), ("skipped", report.skipped)):
        for p in paths:
            if p in stored:
                rows[stored[p]] = {"file": uploads[stored[p]][0], "outcome": outcome, "detail": warnings.get(p, "")}
    for p, reason in report.failed:
        if p in stored:
            rows[stored[p]] = {"file": uploads[stored[p]][0], "outcome": "failed", "detail": reason}
    ordered = [rows[i] for i in sorted(rows)]
    counts = {k: sum(1 for r in ordered if r["outcome"] == k) for k in ("added", "replaced", "skipped", "failed")}
    return {"files": ordered, **counts, "pages": report.pages, "chunks": report.chunks, "seconds": round(report.seconds, 3)}


#: earlier turns a front end sends to condense a follow-up question (the app and the HTTP API)
HISTORY_TURNS = 6
