"""Fixtures shared by the frontend tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def x64() -> Iterator[None]:
    """jax's x64 mode for one test, restored afterwards."""
    jax = pytest.importorskip("jax")
    with jax.enable_x64(True):
        yield
