"""The parser process: reads {"path", "password"} JSON lines on stdin, answers one JSON line each.

Run by ingest.isolate as `python -m ingest.worker MEMORY_MB` so that it starts clean: it does not
re-import the caller's script (as multiprocessing would) and its memory limit is its own.
"""
from __future__ import annotations

import json
import logging
import sys


def _limit_memory(memory_mb: int) -> None:
    try:
        import resource

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):  # not on this platform: the time limit still holds
        pass


def main() -> None:
    memory_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
    _limit_memory(memory_mb)
    logging.disable(logging.WARNING)  # pypdf's warnings about damaged files: the result says enough
    from ingest.parse import parse_file
    from rag.errors import ParseError

    out = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        try:
            pages = parse_file(request["path"], request.get("password"))
            reply = {"ok": [[p.number, p.text, p.label] for p in pages]}
        except ParseError as e:
            reply = {"error": str(e)}
        except MemoryError:
            out.write(json.dumps({"error": f"out of memory while parsing (limit {memory_mb} MB)"}) + "\n")
            out.flush()
            return  # the heap may be in a bad state: the parent starts a fresh process
        except RecursionError:
            reply = {"error": "broken PDF: structure nested too deeply"}
        except Exception as e:  # a bug in the PDF library on this file: report it, keep serving
            reply = {"error": f"parser error: {type(e).__name__}: {str(e)[:200]}"}
        out.write(json.dumps(reply, ensure_ascii=False) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
