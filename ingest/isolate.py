"""Parse files in a separate process with a time and memory limit.

A pathological PDF (a page count of 2e8, a decompression bomb, an endless content stream) can hang
or exhaust pypdf; in a child process it costs only that file. The child (ingest.worker) is reused
between files and replaced when it is killed or dies. Written by hand: concurrent.futures cannot
kill one stuck task, and multiprocessing would re-import the caller's main script in the child.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from ingest.formats.base import SETTINGS_DEFAULTS, ParseOptions
from rag.errors import ParseError
from rag.fs import PipeLines
from rag.types import Page


class _OcrTimeout(Exception):
    """OCR of one page ran out of time (the parser process was killed)."""


class IsolatedParser:
    """`parse(path)` in a child process; raises ParseError on failure, timeout or crash.

    Time limit: `timeout_s` for reading the file, and `ocr_page_timeout_s` more for each page the
    child OCRs (it announces each one), so a long scan is not cut off but a stuck page is."""

    def __init__(self, timeout_s: float = SETTINGS_DEFAULTS["parse_timeout_s"], memory_mb: int = SETTINGS_DEFAULTS["parse_memory_mb"],
                 options: ParseOptions | None = None, ocr_page_timeout_s: float = SETTINGS_DEFAULTS["ocr_page_timeout_s"]) -> None:
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.options = options or ParseOptions()
        self.ocr_page_timeout_s = ocr_page_timeout_s
        self._proc: subprocess.Popen | None = None
        self._lines: PipeLines | None = None  # the child's reply lines
        self.last_warning = ""  # set by parse() when the file was read again without OCR

    def __enter__(self) -> "IsolatedParser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> subprocess.Popen:
        # the child imports the same `ingest` as this process (not another copy an installed package points to)
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
        return subprocess.Popen(
            [sys.executable, "-m", "ingest.worker", str(self.memory_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, encoding="utf-8", bufsize=1, env=env,
        )

    def parse(self, path: str | Path, password: str | None = None) -> list[Page]:
        """The pages; when OCR of a page runs out of time, the file is read again without OCR (its
        text layer is kept) and `last_warning` says so."""
        self.last_warning = ""
        try:
            return self._parse(path, password, self.options)
        except _OcrTimeout as e:
            if not self.options.ocr:
                raise ParseError(str(e)) from None
            pages = self._parse(path, password, replace(self.options, ocr=False))
            self.last_warning = f"{e}: OCR skipped for this file, its text layer kept"
            return pages

    def _parse(self, path: str | Path, password: str | None, options: ParseOptions) -> list[Page]:
        if self._proc is None or self._proc.poll() is not None:
            self.close()
            self._proc = self._start()
            self._lines = PipeLines(self._proc.stdout.fileno())
        proc = self._proc
        try:
            request = {"path": str(path), "password": password, "options": asdict(options)}
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # it died: reported below
        deadline = time.monotonic() + self.timeout_s
        ocr_note = ""
        while True:
            try:
                line = self._lines.read(deadline - time.monotonic())
            except TimeoutError:
                self.close()
                if ocr_note:
                    raise _OcrTimeout(f"timed out: OCR of {ocr_note} took longer than {self.ocr_page_timeout_s:g} s")
                raise ParseError(f"timed out: parsing took longer than {self.timeout_s:g} s")
            if line is None:
                code = proc.wait(timeout=5)
                self.close()
                raise ParseError(f"parser process died (exit code {code}): the file crashed the PDF library or needed more than {self.memory_mb} MB")
            reply = json.loads(line)
            if "progress" in reply:  # one more page to OCR: it gets its own time budget
                event = reply["progress"]
                ocr_note = f"page {event.get('ocr')} of {event.get('of')}"
                deadline = time.monotonic() + self.ocr_page_timeout_s
                continue
            break
        if "error" in reply:
            raise ParseError(reply["error"])
        return [Page(number=n, text=text, label=label, ocr=ocr, ocr_seconds=secs, garbage=garbage, place=place,
                     lead=lead) for n, text, label, ocr, secs, garbage, place, lead in reply["ok"]]

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except (OSError, BrokenPipeError):
                pass
