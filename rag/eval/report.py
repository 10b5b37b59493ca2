"""The harness every measurement script (scripts/*.py) shares: the run stamp, the machine (CPU name,
cores, GPU), the load average, and writing results as JSON and Markdown pages (into docs/).

    from rag.eval.report import load_average, machine, now, table, write_json, write_markdown
    results = {"date": now(), "machine": machine(), "load_before": load_average(), ...}
    write_json(DOCS / "x.json", results); write_markdown(DOCS / "x.md", lines)

Scripts import it from the installed package (pip install -e ., done by make): none edits sys.path.
"""
from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

def now() -> str:
    """The run stamp: UTC time to the second, ISO 8601 ('2026-01-31T12:00:00+00:00'); [:10] is the day."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load averages: timings from a busy machine mean little, so pages state them."""
    return list(os.getloadavg())


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine(device: str = "cpu") -> str:
    """'AMD EPYC …, 2 cores' or the GPU name, for the header of a results page."""
    text = f"{cpu_name()}, {os.cpu_count()} cores"
    if device.startswith("cuda"):
        try:
            import torch

            text += f", GPU {torch.cuda.get_device_name(0)}"
        except Exception:
            pass
    return text


def memory_mb(pid: int | str = "self", field: str = "VmRSS") -> float:
    """A memory line of /proc/PID/status in MB (VmRSS: resident now; VmHWM: its peak); 0.0 when the process
    is gone or the line is absent."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile of `values` by nearest rank (nan when there are none): p50 / p95 of latencies."""
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))] if values else float("nan")


def write_json(path: str | Path, data: Any, indent: int | None = 1) -> Path:
    """Write `data` as JSON (UTF-8, non-ASCII kept), creating the folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_markdown(path: str | Path, lines: Sequence[str] | str) -> Path:
    """Write a results page from its lines (or its text), ending in one newline; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = lines if isinstance(lines, str) else "\n".join(lines)
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
    return path


def table(header: list[str], rows: list[list], align: str | None = None) -> str:
    """A markdown table; numbers right-aligned unless `align` says otherwise ('l'/'r' per column)."""
    align = align or "l" + "r" * (len(header) - 1)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def append_rows(path: Path):
    """`path` opened to append JSON lines, after ending a line torn by a run killed mid-write (so the first new row
    does not run into it)."""
    if path.exists() and path.stat().st_size:
        with path.open("rb") as f:
            f.seek(-1, 2)
            torn = f.read(1) != b"\n"
        if torn:
            with path.open("a", encoding="utf-8") as f:
                f.write("\n")
    return path.open("a", encoding="utf-8")


def read_rows_by_id(path: Path) -> dict[str, dict]:
    """The rows of a JSON-lines cache of generations, by their "id" (empty when the file is absent). A line torn by
    a run killed mid-write is skipped (its item is simply asked again), not fatal to every later run."""
    if not path.exists():
        return {}
    rows = {}
    # errors="replace": a cut may fall inside a multi-byte character; only the torn line holds it
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        rows[row["id"]] = row
    return rows
