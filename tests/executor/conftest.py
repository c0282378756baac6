"""Fixtures of the cluster tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sample")
    subprocess.run([sys.executable, "-m", "shikomi.extract.demo_data", str(d)], check=True, capture_output=True)
    return d
