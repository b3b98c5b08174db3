"""Work done in the inputs' own narrow dtype and returned wider: a Python float of a float16 sum, a float16
kernel's result cast to float32. Its values round as float16 does, though the dtype returned says float64 or
float32; bounds from the wider rounding failed right gradients (the differences of a float16 sum at 3000 stand
still over steps its gradient moves by a fraction of float16's spacing there). The output is taken to round as
float16 wherever a float16 input is differenced and every value at the point is exact in float16 (a wider
computation shows more digits, but for short values such as 3000.0, which tell nothing); right gradients are then
never failed, wrong ones still are, and float32 inputs keep the rounding their checks measure."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck

POINT = np.array([1000.0, 0.0], dtype=np.float16)  # (f is 3000 + 3 q[1]: float16 spaces 2 apart there)


def _sum3(q: np.ndarray) -> float:
    return float(np.sum(3.0 * q))  # (3.0 * a float16 array is float16: the sum too)


@pytest.mark.parametrize("upcast", [False, None])
@pytest.mark.parametrize(("scale", "status"), [(1.0, "not fail"), (3.0, "fail"), (-1.0, "fail")])
def test_a_float16_sum_returned_as_a_python_float(upcast: bool | None, scale: float, status: str) -> None:
    p = POINT.copy()
    grad = np.full(p.shape, 3.0 * scale, dtype=np.float16)
    r = backcheck.check(_sum3, p, grad, upcast=upcast)
    assert (r.status != "fail") if status == "not fail" else (r.status == "fail"), r
    np.testing.assert_array_equal(p, POINT)


def test_a_closure_over_float16_arrays_returned_as_a_python_float() -> None:
    p = POINT.copy()  # CS231n style: f reads the array it closes over, which the check moves in place
    right = backcheck.check(lambda _: _sum3(p), p, np.full(p.shape, 3.0, dtype=np.float16))
    assert right.status != "fail", right
    wrong = backcheck.check(lambda _: _sum3(p), p, np.full(p.shape, 9.0, dtype=np.float16))
    assert wrong.status == "fail", wrong


@pytest.mark.parametrize("seed", range(3))
def test_a_float16_kernel_cast_to_float32(seed: int) -> None:
    x = (1e-3 * np.random.default_rng(seed).standard_normal((4, 3))).astype(np.float16)

    def f(v: np.ndarray) -> np.float32:
        return np.float32(np.sum(np.sqrt(v * v + np.float16(1.0))))  # sqrt(x^2 + 1) is 1 in float16 here

    grad = (x / np.sqrt(x.astype(np.float64) ** 2 + 1)).astype(np.float16)
    assert backcheck.check(f, x, grad, upcast=False).status != "fail"


def test_float32_inputs_summed_in_float64_keep_float64s_rounding() -> None:
    # a value with digits beyond float32's says the work is float64: its bounds stay float64's
    x = np.random.default_rng(0).standard_normal(50).astype(np.float32)
    f = lambda v: float(np.sum(np.sin(v.astype(np.float64))))  # noqa: E731
    r = backcheck.check(f, x, lambda v: np.cos(v.astype(np.float64)))
    assert r.status == "pass", r
    assert r.leaves[0].floor_rel < 2e-5, r  # (float32's rounding of f would state 1.7e-4 here)
