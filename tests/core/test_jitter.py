"""A function whose value at the same point differs between calls by a few units of its last place (a threaded or
pivoting kernel: torch's lstsq with gelsy) jitters, it is not random: the check goes on with that jitter as a
floor of its noise, and says so. A difference beyond rounding is still randomness (NondeterministicError)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import backcheck
from backcheck.errors import NondeterministicError

X = np.random.default_rng(0).normal(size=12)


def _jittering(units: float):
    calls = itertools.count()

    def f(x: np.ndarray) -> float:
        value = float(np.sum(np.sin(x)) + 3.0)
        return value + (next(calls) % 3 - 1) * units * np.finfo(np.float64).eps * abs(value)

    return f


@pytest.mark.parametrize("strategy", ["full", "auto"])
def test_rounding_level_jitter_is_no_randomness(strategy: str) -> None:
    r = backcheck.check(_jittering(4.0), X, np.cos, strategy=strategy)
    assert r.status == "pass", r
    if strategy == "full":  # (random directions that pass make no second call at the point)
        assert any("apart for the same input" in n for n in r.notes), r.notes
    wrong = backcheck.check(_jittering(4.0), X, lambda x: np.cos(x) * 1.01, strategy=strategy)
    assert wrong.status == "fail", wrong


def test_a_difference_beyond_rounding_is_randomness() -> None:
    with pytest.raises(NondeterministicError):
        backcheck.check(_jittering(1e6), X, np.cos)
