"""Schemathesis hooks for tests/unit/test_fuzz.py (loaded through SCHEMATHESIS_HOOKS): a check that no
response body leaks a Python traceback or a file path of the server."""
from __future__ import annotations

import os
import re

import schemathesis

LEAKS = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+|/site-packages/|\.venv/")


@schemathesis.check
def no_internals_in_body(ctx, response, case):
    """No traceback, no Python source location, no path of the server's machine in any body."""
    text = response.text or ""
    found = LEAKS.search(text)
    if found:
        raise AssertionError(f"the body shows the server's internals: {found.group(0)!r}")
    for path in filter(None, os.environ.get("RAG_FUZZ_PRIVATE_PATHS", "").split(os.pathsep)):
        if path in text:
            raise AssertionError(f"the body shows a path of the server: {path!r}")
    return None
