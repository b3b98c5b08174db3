"""The checksum taken of every input after each call sees a function that swaps two of its input's elements."""

import numpy as np
import pytest

import backcheck
from backcheck.bits import SMALL_BYTES, bitsum

W = np.arange(1.0, 9.0)


def _swapping_at(call: int):
    calls = [0]

    def f(x: np.ndarray) -> float:
        calls[0] += 1
        if calls[0] == call:  # two elements the check is not moving: the sum of the array's bits is unchanged
            x[6], x[7] = x[7].copy(), x[6].copy()
        return float(np.sum(np.tanh(x) * W))

    return f


def test_a_small_arrays_checksum_sees_a_permutation():
    a = np.linspace(-1.0, 1.0, 8)
    assert a.nbytes <= SMALL_BYTES
    assert bitsum(a) != bitsum(a[::-1].copy()) and bitsum(a) == bitsum(a.copy())
    big = np.linspace(-1.0, 1.0, SMALL_BYTES)  # (summed: a changed value still shows)
    moved = big.copy()
    moved[5] = np.nextafter(moved[5], 2.0)
    assert bitsum(big) != bitsum(moved) and bitsum(big) == bitsum(big.copy())


@pytest.mark.parametrize("call", range(3, 19))
def test_a_swap_of_two_input_elements_at_any_call_is_caught_and_undone(call):
    x = np.linspace(-1.0, 1.0, 8)
    kept = x.copy()
    report = backcheck.check(_swapping_at(call), x, lambda x: (1 - np.tanh(x) ** 2) * W, strategy="full")
    assert report.status == "fail" and [f.kind for f in report.findings] == ["mutation"], report
    assert np.array_equal(x, kept)
