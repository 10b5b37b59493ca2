"""The parser process: reads {"path", "password", "options"} JSON lines on stdin and answers each
with one final JSON line ({"ok": pages} or {"error": reason}), preceded by {"progress": {...}} lines
while it OCRs (the parent extends its time limit per OCR'd page).

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
    from ingest.formats.base import ParseOptions
    from ingest.formats import parse_file
    from rag.errors import ParseError

    out = sys.stdout

    def progress(event: dict) -> None:
        out.write(json.dumps({"progress": event}) + "\n")
        out.flush()

    for line in sys.stdin:
        request = json.loads(line)
        try:
            options = ParseOptions(**request.get("options", {}))
            pages = parse_file(request["path"], request.get("password"), options, progress)
            reply = {"ok": [[p.number, p.text, p.label, p.ocr, p.ocr_seconds, p.garbage, p.place, p.lead] for p in pages]}
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
