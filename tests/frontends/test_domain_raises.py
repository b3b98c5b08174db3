"""A function that raises a step off its domain, where numpy would return NaN: ``math.sqrt`` and ``math.log`` in
per-element Python, a FloatingPointError under ``np.errstate(all='raise')`` or jax's ``jax_debug_nans``, an
OverflowError from ``math.exp``. The step shrinks from the edge as it does for a NaN (a one-sided stencil where
one side is out), so a right rule passes and a wrong one fails, named; a raise no smaller step avoids says what
was raised; any other exception, and any raise at the point itself, stays the user's error. The user's arrays
come back unchanged every time."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backcheck
from backcheck.errors import UserFunctionError


def sqrt_sum(x: np.ndarray) -> float:
    """``sum(sqrt(x))`` one element at a time in Python's math module (ValueError below 0)."""
    return sum(math.sqrt(v) for v in x.reshape(-1).tolist())


def log_sum_raising(x: np.ndarray) -> float:
    """``sum(log(x))`` with numpy's floating point errors raised (FloatingPointError below 0)."""
    with np.errstate(all="raise"):
        return float(np.sum(np.log(x)))


def _edge_note(report: backcheck.Report) -> str:
    return next((n for n in report.notes if "edge of" in n), "")


@pytest.mark.parametrize("strategy", ["full", "auto"])
def test_math_sqrt_next_to_zero_is_differenced_inside_its_domain(strategy: str) -> None:
    x = np.array([0.2, 1e-7, 0.5, 3.0])
    before = x.copy()
    report = backcheck.check(sqrt_sum, x, lambda v: 0.5 / np.sqrt(v), strategy=strategy)
    assert report.status == "pass", report
    assert "x[1]" in _edge_note(report) and "raised" in _edge_note(report), report.notes
    wrong = backcheck.check(sqrt_sum, x, lambda v: 0.5 / np.sqrt(v) * np.where(v < 1e-6, 1.01, 1.0), strategy=strategy)
    assert wrong.status == "fail" and [e.index for e in wrong.mismatches] == [(1,)], wrong
    np.testing.assert_array_equal(x, before)


def test_math_log_on_the_edge_takes_the_inside_side() -> None:
    # x[0] is 1e-12 above log's pole at 0.2: the step below leaves the domain at every size worth taking
    x = np.array([0.2 + 1e-12, 0.5])

    def f(v: np.ndarray) -> float:
        return math.log(v[0] - 0.2) + math.sin(v[1])

    def grad(v: np.ndarray) -> np.ndarray:
        return np.array([1 / (v[0] - 0.2), math.cos(v[1])])

    assert backcheck.check(f, x, grad).status == "pass"
    report = backcheck.check(f, x, lambda v: grad(v) * [0.99, 1.0])
    assert report.status == "fail" and [e.index for e in report.mismatches] == [(0,)], report


@pytest.mark.parametrize("strategy", ["projected", "full"])
def test_numpy_errors_raised_along_random_directions_and_elements(strategy: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 2.0, size=600)
    x[17] = 1e-9
    before = x.copy()
    report = backcheck.check(log_sum_raising, x, lambda v: 1 / v, strategy=strategy)
    assert report.status == "pass", report
    assert "x[17]" in _edge_note(report), report.notes
    wrong = backcheck.check(log_sum_raising, x, lambda v: 1 / v * np.where(np.arange(v.size) == 17, 1.01, 1.0))
    assert wrong.status == "fail" and [e.index for e in wrong.mismatches] == [(17,)], wrong
    np.testing.assert_array_equal(x, before)


def test_a_raise_no_smaller_step_avoids_says_what_was_raised() -> None:
    def f(v: np.ndarray) -> float:  # overflows at every move of v[0], however small
        return math.exp(710.0 * float(v[0] != 0.5)) + float(v[1]) ** 2

    x = np.array([0.5, 1.0])
    with pytest.raises(UserFunctionError) as info:
        backcheck.check(f, x, lambda v: np.array([0.0, 2 * v[1]]))
    assert "raised OverflowError" in info.value.message and "v[0]" in info.value.message, info.value
    assert isinstance(info.value.__cause__, OverflowError)
    np.testing.assert_array_equal(x, [0.5, 1.0])


def test_other_raises_and_raises_at_the_point_stay_the_users_errors() -> None:
    x = np.array([0.3, 0.7])

    def moved(v: np.ndarray) -> float:
        if v[0] != 0.3:
            raise RuntimeError("a cache keyed by the point")
        return float(np.sum(v**2))

    with pytest.raises(UserFunctionError, match="(?s)RuntimeError.*v\\[0\\] perturbed"):
        backcheck.check(moved, x, lambda v: 2 * v)

    def at_point(v: np.ndarray) -> float:
        with np.errstate(all="raise"):
            return float(np.sum(np.log(v - 0.3)))

    with pytest.raises(UserFunctionError, match="(?s)FloatingPointError.*at the base point"):
        backcheck.check(at_point, x, lambda v: 1 / (v - 0.3))
    np.testing.assert_array_equal(x, [0.3, 0.7])


def test_jax_debug_nans_is_a_domain_edge(x64: None) -> None:
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    import backcheck.jax as bj

    x = jnp.array([0.3, 1e-9, 2.0])
    with jax.debug_nans(True):
        report = bj.check(lambda v: jnp.sum(jnp.sqrt(v)), x)
    assert report.status == "pass", report
    assert "v[1]" in _edge_note(report), report.notes


def test_an_arithmetic_error_raised_once_is_the_users_error() -> None:
    # asked again at the same point it runs: no edge of the domain there, but a function that raised once
    calls = {"n": 0}

    def flaky(v: np.ndarray) -> float:
        calls["n"] += 1
        if calls["n"] == 4:
            raise ZeroDivisionError("once")
        return float(np.sum(v**2))

    x = np.array([0.3, 0.7, 1.1])
    with pytest.raises(UserFunctionError, match="(?s)ZeroDivisionError: once.*perturbed") as info:
        backcheck.check(flaky, x, lambda v: 2 * v)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    np.testing.assert_array_equal(x, [0.3, 0.7, 1.1])
