"""Private names of datatrove, HojiChar, datasketch and SentencePiece are used in one
adapter module per dependency, nowhere else (read from the source with ast):

    datatrove      shikomi/core/datatrove_adapter.py
    hojichar       shikomi/filters/hojichar_adapter.py
    datasketch     shikomi/dedup/datasketch_adapter.py
    sentencepiece  shikomi/tokenize/sentencepiece_adapter.py

A dependency's private names are those its Python source defines plus the private
members of the classes its compiled extensions export. Outside its adapter, a module
may not import a private name of a dependency, read or set an attribute with a name
private to it (`filter._chunk_text`, or `getattr(sp, "_processor")`), monkeypatch one of
its modules (`datatrove.executor.base.add_task_logger = ...`), or, in a class derived
from one of its classes, override or touch that class's private members
(`def _write`, `self._sbatch_args`).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
import textwrap
from functools import cache
from pathlib import Path

import pytest

import shikomi

PKG = Path(shikomi.__file__).resolve().parent
ADAPTERS = {
    "datatrove": "core/datatrove_adapter.py",
    "hojichar": "filters/hojichar_adapter.py",
    "datasketch": "dedup/datasketch_adapter.py",
    "sentencepiece": "tokenize/sentencepiece_adapter.py",
}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _defined_names(tree: ast.AST) -> set[str]:
    """Private names a piece of source defines: functions, classes, assigned names and
    `self.<name>` / `cls.<name>` attributes."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            out.add(node.attr)
    return {n for n in out if _private(n)}


@cache
def dependency_privates(dep: str) -> frozenset[str]:
    """Every private name defined anywhere in the dependency's source, and the private
    members of the classes of its loaded compiled modules (a pybind/SWIG binding's
    `_EncodeAsBufferBatch` is in no .py file)."""
    root = Path(importlib.import_module(dep).__file__).parent
    names: set[str] = set()
    for p in root.rglob("*.py"):
        try:
            names |= _defined_names(ast.parse(p.read_text(encoding="utf-8")))
        except (SyntaxError, UnicodeDecodeError):  # pragma: no cover
            continue
    for name, mod in list(sys.modules.items()):
        if (name == dep or name.startswith(dep + ".")) and not str(getattr(mod, "__file__", "")).endswith(".py"):
            for obj in list(vars(mod).values()):
                if isinstance(obj, type):
                    names |= {n for n in vars(obj) if _private(n)}
    return frozenset(names)


@cache
def class_privates(module: str, name: str) -> tuple[str | None, frozenset[str]]:
    """(dependency, private members) of the dependency classes a class derives from."""
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):  # pragma: no cover - an optional extra
        return None, frozenset()
    if not isinstance(cls, type):
        return None, frozenset()
    dep = None
    names: set[str] = set()
    for c in cls.__mro__:
        root = (c.__module__ or "").split(".")[0]
        if root not in ADAPTERS:
            continue
        dep = dep or root
        names |= {n for n in vars(c) if _private(n)}
        try:
            names |= _defined_names(ast.parse(textwrap.dedent(inspect.getsource(c))))
        except (OSError, TypeError):  # pragma: no cover - no source
            pass
    return dep, frozenset(names)


def _sources() -> dict[Path, ast.Module]:
    return {p: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(PKG.rglob("*.py"))}


def _own_privates(trees: dict[Path, ast.Module]) -> set[str]:
    """Private names shikomi itself defines (outside the adapters)."""
    adapters = {PKG / a for a in ADAPTERS.values()}
    out: set[str] = set()
    for p, tree in trees.items():
        if p not in adapters:
            out |= _defined_names(tree)
    return out


def _dep_of(module: str | None) -> str | None:
    root = (module or "").split(".")[0]
    return root if root in ADAPTERS else None


def violations(trees: dict[Path, ast.Module] | None = None) -> list[str]:
    trees = _sources() if trees is None else trees
    own = _own_privates(trees)
    found: list[str] = []
    for p, tree in trees.items():
        rel = p.relative_to(PKG).as_posix()
        allowed = {d for d, a in ADAPTERS.items() if a == rel}

        def flag(node: ast.AST, dep: str, what: str, rel: str = rel, allowed: set = allowed) -> None:
            if dep not in allowed:
                found.append(f"shikomi/{rel}:{node.lineno}: {what} ({dep} private; use {ADAPTERS[dep]})")

        module = "shikomi." + rel[: -len(".py")].replace("/", ".").removesuffix(".__init__")
        imported: dict[str, tuple[str, str | None]] = {}  # dependency imports: local name -> (module, attribute)
        bases: dict[str, tuple[str, str]] = {}  # what a class may derive from: local name -> (module, class)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases[node.name] = (module, node.name)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    dep = _dep_of(a.name)
                    if dep and any(_private(part) for part in a.name.split(".")):
                        flag(node, dep, f"import {a.name}")
                    if dep:
                        imported[a.asname or a.name.split(".")[0]] = (
                            a.name if a.asname else a.name.split(".")[0],
                            None,
                        )
            elif isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    bases[a.asname or a.name] = (node.module, a.name)
                dep = _dep_of(node.module)
                if not dep:
                    continue
                if any(_private(part) for part in node.module.split(".")):
                    flag(node, dep, f"from {node.module} import ...")
                for a in node.names:
                    if _private(a.name):
                        flag(node, dep, f"from {node.module} import {a.name}")
                    imported[a.asname or a.name] = (node.module, a.name)

        modules = {local for local, (_, attr) in imported.items() if attr is None}
        for node in ast.walk(tree):
            # obj._name on something that is not our own self/cls
            if isinstance(node, ast.Attribute) and _private(node.attr):
                on_self = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
                if not on_self and node.attr not in own:
                    for dep in ADAPTERS:
                        if node.attr in dependency_privates(dep):
                            flag(node, dep, f"._{node.attr[1:]}")
            # getattr(obj, "_name") / hasattr / setattr with a dependency's private name
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr", "setattr")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
                and _private(node.args[1].value)
                and node.args[1].value not in own
            ):
                for dep in ADAPTERS:
                    if node.args[1].value in dependency_privates(dep):
                        flag(node, dep, f'{node.func.id}(..., "{node.args[1].value}")')
            # module.attribute = ... on a dependency module: a monkeypatch
            if isinstance(node, (ast.Assign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    base = t
                    while isinstance(base, ast.Attribute):
                        base = base.value
                    if isinstance(t, ast.Attribute) and isinstance(base, ast.Name) and base.id in modules:
                        flag(node, _dep_of(imported[base.id][0]), f"{ast.unparse(t)} = ... (monkeypatch)")
            # members of dependency classes touched in a derived class
            if isinstance(node, ast.ClassDef):
                dep, privs = None, set()
                for b in node.bases:
                    if isinstance(b, ast.Name) and b.id in bases and bases[b.id] != (module, node.name):
                        d, names = class_privates(*bases[b.id])
                        dep, privs = dep or d, privs | names
                if not privs:
                    continue
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)) and sub.name in privs:
                        flag(sub, dep, f"def {sub.name} overrides a private member")
                    elif (
                        isinstance(sub, ast.Attribute)
                        and isinstance(sub.value, ast.Name)
                        and sub.value.id in ("self", "cls")
                        and sub.attr in privs
                    ):
                        flag(sub, dep, f"self.{sub.attr}")
    return found


def test_dependency_privates_only_in_their_adapter():
    found = violations()
    assert not found, "private names of dependencies outside their adapter:\n" + "\n".join(found)


@pytest.mark.parametrize("dep", sorted(ADAPTERS))
def test_each_adapter_exists(dep):
    assert (PKG / ADAPTERS[dep]).is_file()


def test_the_scan_finds_private_use():
    """The scan itself: a module that reaches into each dependency is reported."""
    probe = (
        "from datatrove.pipeline.writers.parquet import ParquetWriter\n"
        "import datatrove.executor.base as base\n"
        "class W(ParquetWriter):\n"
        "    def _write(self, document, file_handler, filename):\n"
        "        self._writers.clear()\n"
        "base.add_task_logger = None\n"
        "from datasketch.lsh import _optimal_param\n"
        "def f(h, text):\n"
        "    return h._chunk_text(text)\n"
        "def g(sp):\n"
        "    return getattr(getattr(sp, '_processor'), '_EncodeAsBufferBatch')\n"
    )
    found = "\n".join(violations({PKG / "core" / "_privates_probe.py": ast.parse(probe)}))
    assert "_privates_probe.py:4: def _write" in found
    assert "_privates_probe.py:5: self._writers" in found
    assert "_privates_probe.py:6: base.add_task_logger" in found
    assert "_privates_probe.py:7: from datasketch.lsh import _optimal_param" in found
    assert "_privates_probe.py:9: ._chunk_text (hojichar private" in found
    assert '_privates_probe.py:11: getattr(..., "_processor") (sentencepiece private' in found
    assert '_privates_probe.py:11: getattr(..., "_EncodeAsBufferBatch") (sentencepiece private' in found
