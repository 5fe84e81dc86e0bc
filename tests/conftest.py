"""Fixtures shared by core and processing tests."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LANDSLIDE_SHARED", ROOT.parent / "shared"))
REALDATA = SHARED / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """../shared/realdata (real Sentinel-2 files); tests using it skip when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real Sentinel-2 test files not found at {REALDATA} (they live in ../shared/realdata "
                    "beside the checkout; set LANDSLIDE_SHARED to their parent folder)")
    return REALDATA


@pytest.fixture(scope="session")
def example_pair(tmp_path_factory):
    """A small built-in example pair (128 x 128 px, seed 0), made once per test session."""
    from landslide_plugin.examples.example_data import generate_example_pair

    return generate_example_pair(tmp_path_factory.mktemp("example"), size=128, seed=0)
