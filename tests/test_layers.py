"""The direction of imports inside the package, read from the source (ast), as
stated at the top of shikomi/__init__.py: a module imports only from its own layer
package or from layers below it; stage packages never import each other; no module
imports another that imports it back (no cycles)."""

from __future__ import annotations

import ast
from pathlib import Path

import shikomi

PKG = Path(shikomi.__file__).resolve().parent

# top to bottom; one entry per layer, each the sub-packages (or modules) it holds
LAYERS: list[set[str]] = [
    {"cli"},
    {"tools"},
    {"pipeline"},
    {"executor"},
    {"extract", "langid", "dedup", "filters", "mix", "tokenize", "train"},
    {"core", "text"},
    {"config"},
    {"errors"},
]
STAGE_PACKAGES = LAYERS[4]


def _level(top: str) -> int:
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"shikomi.{top} is in no layer: add it to LAYERS here and to the list in shikomi/__init__.py")


def _modules() -> dict[str, Path]:
    mods = {}
    for p in PKG.rglob("*.py"):
        rel = p.relative_to(PKG.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        mods[".".join(parts)] = p
    return mods


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the shikomi modules it imports (at any depth in the file)."""
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{m}: relative import; write `from shikomi.… import …`"
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                if not t or t.split(".")[0] != "shikomi":
                    continue
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != m:
                    graph[m].add(t)
    return graph


def _top(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_imports_only_go_down():
    graph = _imports(_modules())
    wrong = []
    for m, targets in graph.items():
        src = _top(m)
        if src is None or src == "__main__":
            continue
        for t in targets:
            dst = _top(t)
            if dst is None or dst == src:
                continue
            if _level(dst) < _level(src):
                wrong.append(f"{m} -> {t} (upward)")
            elif _level(dst) == _level(src) and src in STAGE_PACKAGES:
                wrong.append(f"{m} -> {t} (one stage package importing another)")
            elif _level(dst) == _level(src) and dst != src:
                wrong.append(f"{m} -> {t} (sideways inside the layer {sorted(LAYERS[_level(src)])})")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles():
    graph = _imports(_modules())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_layers_are_stated_in_the_package_docstring():
    doc = shikomi.__doc__ or ""
    assert "cli → tools → pipeline → executor → stage packages → core, text → config → errors" in doc
    for layer in LAYERS:
        for name in layer:
            assert f"{name}" in doc, f"shikomi/__init__.py does not mention {name}"


def test_the_checker_sees_a_violation(tmp_path):
    """The check itself: an upward import in a module is reported."""
    mods = {"shikomi.core.x": tmp_path / "x.py", "shikomi.cli": tmp_path / "cli.py"}
    mods["shikomi.core.x"].write_text("from shikomi.cli import main\n")
    mods["shikomi.cli"].write_text("import shikomi.core.x\n")
    graph = _imports(mods)
    assert graph["shikomi.core.x"] == {"shikomi.cli"}
    assert _level(_top("shikomi.cli")) < _level(_top("shikomi.core.x"))
