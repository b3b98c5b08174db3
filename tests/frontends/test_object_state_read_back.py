"""A layer whose forward stores a value on self and reads it back (self.h = x; self.h = self.h * 0.7): the probe
compared the ids of the arrays before and after forward without holding the old ones, and an array freed when
forward replaced it lent its id to the next one, so the stored activation looked untouched by forward, was taken
for a parameter and refused ("found no gradient of self.h"; float32 in helper B's runs). The probe holds the
arrays themselves."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


class Scale:
    def __init__(self):
        self.h = None

    def forward(self, x):
        self.h = x
        self.h = self.h * 0.7
        return self.h

    def backward(self, g):
        return g * 0.7


class IdentityDropout:  # a dropout whose backward forgets the mask and the scale (wrong)
    def __init__(self, p=0.3):
        self.x, self.p = None, p

    def forward(self, x):
        self.x = x
        self.x = self.x * (np.random.default_rng(0).uniform(size=x.shape) >= self.p)
        self.x = self.x * (1.0 - self.p)
        return self.x

    def backward(self, g):
        return g


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_stored_activation_read_back_is_state(dtype):
    for seed in range(4):
        x = np.random.default_rng(seed).normal(size=(5, 4)).astype(dtype)
        assert backcheck.check_object(Scale(), x).status == "pass"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_wrong_backward_beside_it_fails(dtype):
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(dtype)
    assert backcheck.check_object(IdentityDropout(), x).status == "fail"
