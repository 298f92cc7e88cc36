"""Shared test fixtures."""

from __future__ import annotations

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_LPC = REPO_ROOT.parent / "shared" / "data" / "lpc"


@pytest.fixture(scope="session")
def shared_lpc_dir() -> pathlib.Path:
    """The LPC layer sheets beside the checkout (present in CI)."""
    if not SHARED_LPC.is_dir():
        pytest.skip(f"LPC sheets not found at {SHARED_LPC}")
    return SHARED_LPC


@pytest.fixture(autouse=True)
def _quiet_tfds(monkeypatch):
    monkeypatch.setenv("TFDS_DISABLE_PROGRESS_BAR", os.environ.get("TFDS_DISABLE_PROGRESS_BAR", "1"))
