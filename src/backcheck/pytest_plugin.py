"""pytest plugin (registered through the ``pytest11`` entry point).

Provides the ``backcheck`` fixture: the backcheck module, so tests can write
``backcheck.assert_layer(forward, backward, inputs)`` and get the report table as the failure message.
"""

from __future__ import annotations

from types import ModuleType

import pytest


@pytest.fixture
def backcheck() -> ModuleType:
    import backcheck as module

    return module
