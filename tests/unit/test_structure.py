"""The structure GUIDE.md section 2 asks for, beyond the layers that `lint-imports` checks (test_layers.py):
no module imports another that imports it back (lazy and TYPE_CHECKING imports count), no module uses
another's _private names, and no caller probes a store for what it can do (the Store contract declares it)."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("rag", "ingest", "ui")
#: what a script or a module reaches of the standard library's documented underscore names, and the one
#: third-party private module used on purpose: llama-cpp-python has no public way to give a Llama an eval
#: callback, so rag/models/llamacpp.py makes a new llama_cpp._internals.LlamaContext (llama-cpp-python is
#: pinned in pyproject.toml, and the answerability tests run that code against the real library)
ALLOWED_PRIVATE = {"os._exit", "from llama_cpp import _internals"}


def python_files(*tops: str) -> list[Path]:
    return sorted(p for top in tops for p in (ROOT / top).rglob("*.py"))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_between_modules(monkeypatch):
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (the dev extras)")
    monkeypatch.syspath_prepend(str(ROOT))
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False, exclude_type_checking_imports=False, cache_dir=None)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert cycles(edges) == []


def test_cycles_are_found_where_there_is_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_between_scripts():
    """Scripts import a sibling by its name (Python puts scripts/ first on the path of a script it runs)."""
    names = {p.stem for p in python_files("scripts")}
    edges: dict[str, set[str]] = {}
    for path in python_files("scripts"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module in names:
                edges.setdefault(path.stem, set()).add(node.module)
            elif isinstance(node, ast.Import):
                edges.setdefault(path.stem, set()).update(a.name for a in node.names if a.name in names)
    assert cycles(edges) == []


def private_reaches(path: Path) -> list[str]:
    """`from m import _x` and `obj._x` where _x is not defined in this module (self._x and cls._x are the
    module's own)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            own.add(node.id)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            found += [text for a in node.names if a.name.startswith("_") and not a.name.startswith("__")
                      and (text := f"from {node.module} import {a.name}") not in ALLOWED_PRIVATE]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            target = node.value
            if isinstance(target, ast.Name) and target.id in ("self", "cls"):
                continue
            if isinstance(target, ast.Call) and isinstance(target.func, ast.Name) and target.func.id == "super":
                continue
            text = ast.unparse(node)
            if node.attr not in own and text not in ALLOWED_PRIVATE:
                found.append(f"{text} (line {node.lineno})")
    return found




def store_probes(path: Path) -> list[str]:
    """hasattr / getattr on an index or a store: a capability asked of the object instead of the contract."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr") and node.args:
            subject = ast.unparse(node.args[0])
            if any(word in subject.split(".")[-1].lower() for word in ("index", "store")):
                found.append(f"{ast.unparse(node)} (line {node.lineno})")
    return found


@pytest.mark.parametrize("check", [private_reaches, store_probes])
def test_no_module_reaches_private_names_or_probes_a_store(check):
    found = {str(p.relative_to(ROOT)): f for p in python_files(*PACKAGES, "scripts") if (f := check(p))}
    assert found == {}


@pytest.mark.parametrize("check, source, found", [
    (private_reaches, "from m import _hidden\nimport os\nos._exit\nx = kb._store\nself._mine = 1\ny = other._mine\n",
     ["from m import _hidden", "kb._store (line 4)"]),
    (store_probes, 'a = hasattr(self.index, "hybrid")\nb = getattr(kb.store, "commit_rows", 0)\nc = getattr(embedder, "spec", None)\n',
     ["hasattr(self.index, 'hybrid') (line 1)", "getattr(kb.store, 'commit_rows', 0) (line 2)"]),
])
def test_the_checks_see_what_they_look_for(tmp_path, check, source, found):
    sample = tmp_path / "sample.py"
    sample.write_text(source)
    assert check(sample) == found
