"""The generator's worker process (protocol: rag/models/isolated.py). Run as `python -m rag.models.gen_worker`.

It reads the settings, builds and loads the generator they name (in this process, `llm_process` inline),
answers {"ready": ...}, then serves one request at a time until its stdin closes. SIGUSR1 ends the answer
being written at its next piece (the parent stopped reading). The protocol has the process's real stdout
to itself: file descriptor 1 is pointed at stderr, so that nothing a native library prints can corrupt it.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time


def _die_with_parent() -> None:
    """End this process when its parent is gone (a watchdog on the parent's pid: PR_SET_PDEATHSIG would fire
    when the parent *thread* that started it ends, and Streamlit ends its script threads after every run), and
    offer this process first to the out-of-memory killer (the model is the big one)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(2)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watchdog").start()
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass


def main() -> None:
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _die_with_parent()
    cancel = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: cancel.set())

    def send(message: dict) -> None:
        proto.write(json.dumps(message, ensure_ascii=False) + "\n")
        proto.flush()

    first = sys.stdin.readline()
    if not first:
        return
    try:
        from rag.models.base import Prompt
        from rag.models.isolated import encode_signals
        from rag.models.registry import make_generator
        from rag.settings import Settings

        settings = Settings(**json.loads(first)["settings"])
        generator = make_generator(settings)
        generator.warm_up()
    except Exception as e:  # a missing package or model file, a CPU the build cannot run on: said, not crashed
        send({"error": f"{type(e).__name__}: {e}"})
        return
    send({"ready": {"name": generator.name, "context_window": generator.context_window, "is_llm": generator.is_llm,
                    "build": generator.build}})

    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["op"] == "count":
                send({"counts": [generator.count_tokens(t) for t in request["texts"]]})
                continue
            cancel.clear()
            signals: dict | None = {} if request.get("signals") else None
            for piece in generator.stream(Prompt(**request["prompt"]), max_tokens=request["max_tokens"],
                                          temperature=request["temperature"], signals=signals):
                send({"piece": piece})
                if cancel.is_set():
                    break
            send({"end": encode_signals(signals or {})})
        except MemoryError:
            send({"error": "out of memory"})
            return  # the heap may be in a bad state: the parent starts a fresh process
        except Exception as e:  # the model failed on this request: say so, keep serving
            send({"error": f"{type(e).__name__}: {str(e)[:300]}"})


if __name__ == "__main__":
    main()
