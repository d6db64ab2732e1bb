"""Shared fixtures: paths to ../shared/data (skipped with a reason where it is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("FER_SHARED_DATA", ROOT.parent / "shared" / "data"))
FER_DIR = SHARED_DATA / "fer2013"
ASTRONAUT = SHARED_DATA / "photos" / "astronaut.png"


@pytest.fixture(scope="session")
def fer_dir() -> Path:
    if not (FER_DIR / "train").is_dir():
        pytest.skip(f"FER2013 image folders not found at {FER_DIR} (CI has ../shared/data; a fresh clone may not)")
    return FER_DIR


@pytest.fixture(scope="session")
def astronaut_path() -> Path:
    if not ASTRONAUT.is_file():
        pytest.skip(f"{ASTRONAUT} not found (CI has ../shared/data; a fresh clone may not)")
    return ASTRONAUT


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session caches loaded datasets in its own folder, never in the user's ~/.cache."""
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "fer_cache"))
