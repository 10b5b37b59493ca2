"""A generator in its own worker process: a crash, hang or out-of-memory of the model costs one answer.

llama.cpp is native code. On some CPUs it has crashed (SIGSEGV in its AMX matmul, rag/models/llama_build.py),
and any native model can hang or exhaust memory. In the process that serves users that would end the app,
the HTTP server or a script's interpreter for everyone. So the local models run in a child process
(`python -m rag.models.gen_worker`), as the PDF parser does (ingest/isolate.py), and this proxy speaks to
it over pipes, one JSON line per message:

  parent -> child   {"settings": {...}}                    once: build and load the generator
  child -> parent   {"ready": {name, context_window, is_llm, build}}   or {"error": reason}
  parent -> child   {"op": "stream", "prompt": {...}, "max_tokens", "temperature", "signals": bool}
  child -> parent   {"piece": text} ... then {"end": signals}    or {"error": reason} (the worker lives on)
  parent -> child   {"op": "count", "texts": [...]}
  child -> parent   {"counts": [...]}

Every call has a time limit (Settings.llm_timeout_s; loading has llm_load_timeout_s). When the child dies
or runs out of time, the call raises GeneratorStopped with one sentence for the user; the cause (signal,
exit code, the child's last stderr lines, the CPU and the llama.cpp build) goes to the log, and the next
call starts a new child. Pieces cross the pipe as they are made: the stream costs no more than a line of
JSON per piece (docs/answer_speed.md measures it).

Written by hand: multiprocessing would re-import the caller's main script in the child (a Streamlit
script), and concurrent.futures cannot kill one stuck call.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from rag.errors import GeneratorStopped
from rag.fs import PipeLines
from rag.models.base import Generator, Prompt
from rag.settings import Settings

log = logging.getLogger(__name__)

#: what the user reads when the worker stopped; {why} is one short clause
STOPPED = ("the local model stopped ({why}), so this question got no answer. Ask again: the next question starts "
           "the model afresh. Your documents and knowledge bases are not affected.")
COUNT_CACHE = 4096  # token counts kept per text (fit_context counts the same passage blocks many times)


def worker_settings(settings: Settings) -> dict:
    """The settings the worker builds its generator from (secrets included: they travel by pipe, not argv)."""
    data = settings.model_dump(mode="json")
    data["openai_api_key"] = settings.openai_api_key.get_secret_value()
    data.pop("milvus_token", None)
    data["llm_process"] = "inline"
    return data


class IsolatedGenerator(Generator):
    """The generator `settings` name, run in a worker process (see the module's docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = settings.generator  # until the worker reports the model's own name
        self.context_window = settings.n_ctx
        self.is_llm = True
        self._proc: subprocess.Popen | None = None
        self._lines: PipeLines | None = None  # the worker's messages
        self._stderr: deque[str] = deque(maxlen=40)  # the child's last stderr lines, for the log
        self._lock = threading.Lock()  # one call at a time: the worker holds one model context
        self._counts: "OrderedDict[str, int]" = OrderedDict()
        self._counts_lock = threading.Lock()  # the cache is read while an answer holds the worker

    # ------------------------------------------------------------------ the worker's life
    @property
    def pid(self) -> int | None:
        """The worker's process id while one runs (tests kill it to check what the user sees)."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def warm_up(self) -> None:
        with self._lock:
            self._ensure()

    def _ensure(self) -> subprocess.Popen:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._discard()
        root = str(Path(__file__).resolve().parents[2])  # the child imports this same `rag`
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
        proc = subprocess.Popen([sys.executable, "-m", "rag.models.gen_worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                                bufsize=1, env=env)
        self._proc, self._lines = proc, PipeLines(proc.stdout.fileno())
        self._stderr.clear()
        threading.Thread(target=self._drain_stderr, args=(proc,), daemon=True, name="gen-worker-stderr").start()
        self._send({"settings": worker_settings(self.settings)})
        reply = self._read(time.monotonic() + self.settings.llm_load_timeout_s, "loading the model")
        if "error" in reply:  # cannot load: the pool answers extractively and says why
            self._discard()
            raise GeneratorStopped(f"the local model could not start: {reply['error']}")
        ready = reply["ready"]
        self.name, self.context_window, self.is_llm, self.build = (ready["name"], ready["context_window"], ready["is_llm"],
                                                                   ready.get("build", ""))
        log.info("generator %s ready in worker process %d", self.name, proc.pid)
        return proc

    def _drain_stderr(self, proc: subprocess.Popen) -> None:
        try:
            for line in proc.stderr:
                self._stderr.append(line.rstrip())
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        with self._lock:
            self._discard()

    def _discard(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a zombie the kernel has not reaped yet
            pass
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except (OSError, ValueError):
                pass

    def __del__(self) -> None:
        try:
            self._discard()
        except Exception:
            pass

    # ------------------------------------------------------------------ messages
    def _send(self, message: dict) -> None:
        try:
            self._proc.stdin.write(json.dumps(message, ensure_ascii=False) + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # it died: the read that follows says how

    def _read(self, deadline: float, doing: str) -> dict:
        """The worker's next message; GeneratorStopped when it died or the deadline passed."""
        try:
            line = self._lines.read(deadline - time.monotonic())
        except TimeoutError:
            limit = self.settings.llm_load_timeout_s if doing == "loading the model" else self.settings.llm_timeout_s
            self._stopped(f"it took longer than {limit:g} s", f"timed out while {doing}")
        if line is None:
            try:
                code = self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
            self._stopped(_death(code), f"died while {doing} (exit {code})")
        return json.loads(line)

    def _stopped(self, why: str, cause: str) -> None:
        """Log the cause, end the worker, raise the user's sentence."""
        from rag.models.llama_build import cpu_name, installed_record

        time.sleep(0.05)  # let the stderr reader take the child's last words
        record = installed_record() or {}
        log.error("generator worker %s %s; CPU %s; llama-cpp-python build %s; last stderr:\n%s", self.settings.generator,
                  cause, cpu_name() or "unknown", record.get("variant", "not built by make install"),
                  "\n".join(self._stderr) or "(none)")
        self._discard()
        raise GeneratorStopped(STOPPED.format(why=why), why)

    # ------------------------------------------------------------------ the Generator interface
    def count_tokens(self, text: str) -> int:
        with self._counts_lock:
            if text in self._counts:
                self._counts.move_to_end(text)
                return self._counts[text]
        with self._lock:
            self._ensure()
            self._send({"op": "count", "texts": [text]})
            reply = self._read(time.monotonic() + self.settings.llm_timeout_s, "counting tokens")
        if "error" in reply:
            raise GeneratorStopped(f"the local model could not count tokens: {reply['error']}")
        with self._counts_lock:
            self._counts[text] = reply["counts"][0]
            while len(self._counts) > COUNT_CACHE:
                self._counts.popitem(last=False)
        return reply["counts"][0]

    def stream(self, prompt: Prompt, *, max_tokens: int = 256, temperature: float = 0.0,
               signals: dict | None = None) -> Iterator[str]:
        with self._lock:
            self._ensure()
            deadline = time.monotonic() + self.settings.llm_timeout_s
            self._send({"op": "stream", "prompt": asdict(prompt), "max_tokens": max_tokens, "temperature": temperature,
                        "signals": signals is not None})
            finished = False
            try:
                while True:
                    reply = self._read(deadline, "writing an answer")
                    if "piece" in reply:
                        yield reply["piece"]
                    elif "end" in reply:
                        finished = True
                        if signals is not None:
                            signals.update(decode_signals(reply["end"]))
                        return
                    else:  # an error the worker survived (a bad prompt, a model error): this call fails
                        finished = True
                        raise GeneratorStopped(f"the local model failed on this question: {reply.get('error')}")
            finally:
                if not finished and self._proc is not None:
                    self._abandon(deadline)

    def _abandon(self, deadline: float) -> None:
        """The caller stopped reading mid-answer: the worker is told to stop (SIGUSR1 ends its answer at
        the next piece) and the rest of the answer is read away, so the next call starts clean."""
        proc = self._proc
        try:
            proc.send_signal(signal.SIGUSR1)
            while True:
                reply = self._read(deadline, "stopping an answer")
                if "end" in reply or "error" in reply:
                    return
        except GeneratorStopped:
            pass  # it died or ran out of time meanwhile: already discarded, the next call starts a new one
        except OSError:
            self._discard()


def _death(code: int | None) -> str:
    """How the worker ended, in a few words a user can read."""
    if code is None:
        return "it stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if name == "SIGKILL":
            return "it was killed (SIGKILL), often for lack of memory"
        return f"it crashed with {name}"
    return f"it exited with code {code}"


def encode_signals(signals: dict) -> dict:
    """A stream's signals as JSON: hidden-state vectors as base64 of little-endian float32."""
    import numpy as np

    out = dict(signals)
    if "hidden" in out:
        out["hidden"] = {k: base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode() for k, v in out["hidden"].items()}
    return out


def decode_signals(data: dict) -> dict:
    import numpy as np

    out = dict(data)
    if "hidden" in out:
        out["hidden"] = {k: np.frombuffer(base64.b64decode(v), dtype="<f4").copy() for k, v in out["hidden"].items()}
    return out
