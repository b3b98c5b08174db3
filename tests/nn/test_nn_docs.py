"""The examples in the docstrings of backcheck.nn run and print what they claim."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import numpy as np
import pytest

import backcheck.nn

MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(backcheck.nn.__path__, "backcheck.nn.")
    if not name.endswith("demo")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs={"np": np}, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
