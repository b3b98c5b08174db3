from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_import_state() -> Iterator[None]:
    """`backcheck check` imports user files and puts their folder on sys.path: undo it after each test."""
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if not name.startswith(("backcheck", "numpy", "rich", "matplotlib", "PIL", "jsonschema")):
            del sys.modules[name]
