"""Shared fixtures. The real-data suite reads ../shared/data: it skips when the folder
is missing (a user's clone) and fails when CI=true."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SHIKOMI_SHARED_DATA", ROOT.parent / "shared" / "data"))
IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_configure(config):
    os.environ.setdefault("MPLCONFIGDIR", str(ROOT / ".venv" / ".mplconfig"))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip (fail under CI=true)."""
    if not SHARED_DATA.is_dir():
        if IN_CI:
            pytest.fail(f"CI=true but the real-data folder {SHARED_DATA} is missing")
        pytest.skip(f"real-data suite: {SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
