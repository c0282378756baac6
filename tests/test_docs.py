"""The manual lives once (README.md is the front page, docs/*.md the pages) and
points only at things that exist: relative links (and their #anchors), the
repository paths it names, the two commands at the top of the front page, and a
layout section that names every sub-package of shikomi/."""

from __future__ import annotations

import glob
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
# a repository path: starts a word (not ../x/shikomi/, not /tmp/shikomi-x), stops at
# characters that only placeholders use (<stage>, {md,json})
PATH = re.compile(r"(?<![\w./~-])((?:shikomi|tests|configs|scripts)/[\w./*-]*)")
# a module named in the text (`python -m shikomi.extract.demo_data`, `shikomi.train.data.step_documents`)
MODULE = re.compile(r"(?<![\w./-])shikomi(?:\.\w+)+")
FENCE = re.compile(r"^(```|~~~)")


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def _headings(text: str) -> list[str]:
    out, fence = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fence = not fence
        elif not fence and (m := re.match(r"#{1,6} (.+)", line)):
            out.append(m.group(1).strip())
    return out


def _anchors(path: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation removed, spaces to hyphens,
    repeats numbered."""
    seen: dict[str, int] = {}
    ids = set()
    for h in _headings(path.read_text(encoding="utf-8")):
        slug = re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        ids.add(slug if n == 0 else f"{slug}-{n}")
    return ids


def test_docs_exist():
    names = {p.name for p in DOCS}
    for page in ["README", "extract", "langid", "dedup", "clean", "mix", "tokenize", "train"]:
        assert f"{page}.md" in names
    for page in ["inspect", "cluster", "recipes", "bench"]:
        assert f"{page}.md" in names
    assert not (ROOT / "docs" / "sections").exists(), "the manual lives once: docs/*.md"


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_relative_links_point_to_existing_files(page: Path):
    bad = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            bad.append(f"{target}: no file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            bad.append(f"{target}: no heading #{anchor} in {_rel(dest)}")
    assert not bad, f"{_rel(page)}: broken links:\n" + "\n".join(bad)


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_repository_paths_exist(page: Path):
    bad = []
    for raw in PATH.findall(page.read_text(encoding="utf-8")):
        path = raw.rstrip(".-")
        if "*" in path:
            if not glob.glob(str(ROOT / path)):
                bad.append(path)
        elif not (ROOT / path).exists():
            bad.append(path)
    assert not bad, f"{_rel(page)} names paths that do not exist: {sorted(set(bad))}"


def _module_file(parts: list[str]) -> Path | None:
    base = ROOT.joinpath(*parts)
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def _names_module(dotted: str) -> bool:
    """shikomi.a.b is a module or package, or shikomi.a.b.name a name defined in one."""
    parts = dotted.split(".")
    if _module_file(parts):
        return True
    f = _module_file(parts[:-1])
    return bool(f) and re.search(rf"^(?:def|class)\s+{parts[-1]}\b|^{parts[-1]}\s*=", f.read_text("utf-8"), re.M)


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_modules_named_exist(page: Path):
    bad = [m for m in MODULE.findall(page.read_text(encoding="utf-8")) if not _names_module(m)]
    assert not bad, f"{_rel(page)} names modules that do not exist: {sorted(set(bad))}"


def test_readme_opens_with_the_two_commands():
    head = "\n".join(README.read_text(encoding="utf-8").splitlines()[:30])
    assert "make demo" in head and "make test" in head


def _layout_section() -> str:
    text = README.read_text(encoding="utf-8")
    m = re.search(r"^## Repository layout\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, "README.md has no '## Repository layout' section"
    return m.group(1)


def test_readme_layout_names_every_subpackage():
    layout = _layout_section()
    pkg = ROOT / "shikomi"
    subpackages = sorted(p.parent.name for p in pkg.glob("*/__init__.py"))
    modules = sorted(p.name for p in pkg.glob("*.py") if p.name != "__init__.py")
    assert subpackages
    missing = [f"{name}/" for name in subpackages if not re.search(rf"^\s+{name}/\s", layout, re.M)]
    missing += [name for name in modules if not re.search(rf"^\s+{re.escape(name)}\s", layout, re.M)]
    assert not missing, f"README.md's layout section does not name: {missing}"
    assert "cli → tools → pipeline → executor → stage packages → core, text → config → errors" in layout
