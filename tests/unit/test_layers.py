"""The layers of GUIDE.md section 2 hold: `lint-imports` keeps the contract in pyproject.toml
(imports inside functions and under TYPE_CHECKING count)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lint_imports() -> str | None:
    beside = Path(sys.executable).with_name("lint-imports")
    return str(beside) if beside.exists() else shutil.which("lint-imports")


def test_no_module_imports_a_higher_layer():
    exe = lint_imports()
    if exe is None:
        pytest.skip("import-linter is not installed (it is in the dev extras: pip install -e '.[dev]')")
    run = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
