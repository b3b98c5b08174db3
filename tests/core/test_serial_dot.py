"""backcheck.bits.dot: the dot products every evaluation of a check takes (an output's reduction to phi, a
direction's analytic side) call BLAS with at most SERIAL_DOT elements at a time, which OpenBLAS computes on the
calling thread: a longer one is split over BLAS's threads, whose wake-up on a machine whose cores are busy (tests
run in parallel) cost 16 ms a call where one thread takes microseconds."""

import numpy as np
import pytest

import backcheck
from backcheck import bits
from backcheck.bits import SERIAL_DOT, dot


@pytest.fixture
def sizes(monkeypatch):
    seen = []
    real = np.dot

    def counted(a, b, *args):
        seen.append(np.size(a))
        return real(a, b, *args)

    monkeypatch.setattr(bits.np, "dot", counted)
    return seen


@pytest.mark.parametrize("n", [0, 1, SERIAL_DOT, SERIAL_DOT + 1, 5 * SERIAL_DOT + 17])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_dot_is_np_dot_in_chunks_blas_keeps_on_one_thread(n, dtype, sizes):
    rng = np.random.default_rng(n)
    a, b = rng.normal(size=n).astype(dtype), rng.normal(size=n).astype(dtype)
    got = dot(a, b)
    assert isinstance(got, float)
    assert sizes and max(sizes) <= SERIAL_DOT and sum(sizes) == n, sizes
    # the same sum in another order: within the rounding of the terms' sizes
    exact = float(np.sum(a.astype(np.float64) * b.astype(np.float64)))
    scale = float(np.sum(np.abs(a.astype(np.float64) * b.astype(np.float64))))
    assert abs(got - exact) <= 4 * max(n, 1) * np.finfo(dtype).eps * scale


def test_a_check_of_a_large_array_takes_no_dot_longer_than_one_thread_computes(sizes):
    rng = np.random.default_rng(0)
    c, x = rng.normal(size=10**5), rng.normal(size=10**5)
    report = backcheck.check(lambda x: float(np.sum(np.sin(x) * c)), x, lambda x: np.cos(x) * c, strategy="projected")
    assert report.status == "pass", report
    assert sizes and max(sizes) <= SERIAL_DOT, max(sizes)
