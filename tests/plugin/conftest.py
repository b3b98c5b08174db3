"""The inner test sessions' shared module: a layer with a right and a wrong backward pass."""

from __future__ import annotations

import pytest

LAYERS = '''
import numpy as np
import backcheck
from backcheck import check_layer  # bound at import time: still recorded


def fwd(x, w):
    return x @ w


def bwd(dout, x, w):
    return dout @ w.T, x.T @ dout


def bad(dout, x, w):
    return dout @ w.T, x.T @ dout * 1.01


X = np.random.default_rng(0).normal(size=(3, 4))
W = np.random.default_rng(1).normal(size=(4, 2))
'''


@pytest.fixture
def layers(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(layers_mod=LAYERS)
    pytester.syspathinsert()
    return pytester
