"""Small helpers shared by the measurement scripts (scripts/*.py) that write docs/."""
from __future__ import annotations

import os
import platform
from pathlib import Path


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


def table(header: list[str], rows: list[list], align: str | None = None) -> str:
    """A markdown table; numbers right-aligned unless `align` says otherwise ('l'/'r' per column)."""
    align = align or "l" + "r" * (len(header) - 1)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def read_rows_by_id(path: Path) -> dict[str, dict]:
    """The rows of a JSON-lines cache of generations, by their "id" (empty when the file is absent)."""
    import json

    if not path.exists():
        return {}
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    return {row["id"]: row for row in rows}
