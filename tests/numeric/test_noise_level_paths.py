"""noise_level of one element's scale (a float, at every level of a refinement) is the array path's value."""

import itertools
import math
from types import SimpleNamespace

import numpy as np

from backcheck.numeric.grad import noise_level

VALUES = [0.0, 1e-300, 3e-17, 0.5, 1.0, 7.0, 1e12, math.inf, math.nan]


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_the_scalar_path_equals_the_array_path_bit_for_bit():
    checked = 0
    for eps, whole, noise, noise_scale, scale in itertools.product(
        [2.2e-16, 1.2e-7], [0.0, 2.0, 1e8], [0.0, 1e-14, 3e-6, math.nan], [0.0, 0.3, 50.0, math.nan], VALUES
    ):
        ev = SimpleNamespace(
            out_eps=eps, scale=whole, phi0=-whole / 2, noise=noise, noise_known=noise, noise_scale=noise_scale
        )
        for lazy in (False, True):
            fast = noise_level(ev, float(scale), lazy)
            slow = noise_level(ev, np.asarray(scale), lazy)  # (a 0-d array takes the array path)
            assert type(fast) is float and _same(fast, float(slow)), (eps, whole, noise, noise_scale, scale, lazy)
            assert _same(noise_level(ev, np.float64(scale), lazy), fast)
            checked += 1
    assert checked == 2 * 3 * 4 * 4 * len(VALUES) * 2
