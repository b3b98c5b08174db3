"""Properties of the tolerance model (backcheck.verdict): bounds, kinks, and the two-stage judgement."""

import numpy as np
import pytest

from backcheck.evaluate import Evaluator, Output
from backcheck.judgement import judge
from backcheck.numeric.grad import noise_level
from backcheck.tree import Tree
from backcheck.verdict import (
    KINK,
    MAX_LEVELS,
    MISMATCH,
    OK,
    SAFETY,
    FirstDifferences,
    Tolerance,
    bound,
    is_kink,
    resolution,
)

given = pytest.importorskip("hypothesis").given
assume = pytest.importorskip("hypothesis").assume
st = pytest.importorskip("hypothesis.strategies")

positive = st.floats(min_value=1e-12, max_value=1e6, allow_nan=False)


@given(positive, positive, positive, positive)
def test_bound_grows_with_each_source_of_error(trunc, noise, res, more):
    base = bound(trunc, noise, res)
    assert base == SAFETY * (trunc + noise + res)
    assert bound(trunc + more, noise, res) >= base
    assert bound(trunc, noise + more, res) >= base
    assert bound(trunc, noise, res + more) >= base
    assert bound(trunc + base, noise, res) > base  # an addition that registers in float64 always widens it


def _evaluator(f, x):
    tree = Tree(x, "x")
    ev = Evaluator(tree, f, Output.loss("f"), "f")
    ev.baseline()
    return ev


def test_bound_grows_with_measured_noise_and_with_the_dtype_epsilon():
    ev = _evaluator(lambda x: float(np.sum(x**2)), np.ones(3))
    quiet = noise_level(ev)
    ev.noise = 1e-6
    assert noise_level(ev) > quiet
    a = np.array([1.0])
    assert np.all(resolution(a, a, np.finfo(np.float32).eps, a) > resolution(a, a, np.finfo(np.float64).eps, a))


@given(st.floats(min_value=1e-6, max_value=1e3), st.floats(min_value=1e-14, max_value=1e-10))
def test_a_gap_that_halves_with_the_step_is_no_kink_but_one_that_stays_is(gap, noise):
    assert not is_kink(gap / 2, gap, noise)  # smooth: the one-sided slopes meet as the step shrinks
    assert is_kink(gap, gap, noise)  # a kink: the jump in slope does not shrink
    assert not is_kink(SAFETY * noise / 2, SAFETY * noise / 2, noise)  # below rounding: noise, not a kink


def _first(ev, idx, h):
    return FirstDifferences(*ev.first_differences(idx, h))


def test_judge_clears_correct_elements_fails_wrong_ones_and_names_kinks():
    x = np.array([0.3, -1.2, 0.0, 2.0])
    ev = _evaluator(lambda x: float(np.sum(np.abs(x) + np.sin(x))), x)
    idx = np.arange(4)
    h = np.full(4, 1e-6)
    right = np.sign(x) + np.cos(x)
    right[2] = 2.0  # at |x|'s kink: the right-hand slope, a valid one-sided value the central difference misses
    j = judge(ev, idx, right, h, _first(ev, idx, h), np.zeros(4), Tolerance())
    assert list(j.status) == [OK, OK, KINK, OK]
    wrong = right.copy()
    wrong[1] *= 1 + 1e-4
    j = judge(ev, idx, wrong, h, _first(ev, idx, h), np.zeros(4), Tolerance())
    assert j.status[1] == MISMATCH and j.status[0] == OK


def test_a_user_tolerance_replaces_the_error_model():
    ev = _evaluator(lambda x: float(np.sum(x**3)), np.array([1.0, 2.0]))
    idx, h = np.arange(2), np.full(2, 1e-6)
    off = np.array([3.0 * 1.001, 12.0])
    loose = judge(ev, idx, off, h, _first(ev, idx, h), np.zeros(2), Tolerance(rtol=1e-2))
    strict = judge(ev, idx, off, h, _first(ev, idx, h), np.zeros(2), Tolerance(rtol=1e-5))
    assert list(loose.status) == [OK, OK] and strict.status[0] == MISMATCH


@given(st.floats(min_value=-3.0, max_value=3.0), st.sampled_from([1e-2, 1e-4, -1e-3]))
def test_a_smooth_mismatch_is_judged_at_its_own_steps_with_no_finer_ones(x0, off):
    """Finer steps are for kinks inside the step: a smooth function's wrong element costs no more than before."""
    assume(abs(np.cos(x0)) >= 0.1)  # f' small against f'' h looks kinked to a first difference: test_near_kinks
    ev = _evaluator(lambda x: float(np.sum(np.sin(x))), np.array([x0]))
    steps = []
    element = ev.element

    def recorded(i, offsets):
        steps.append(abs(float(offsets[0])))
        return element(i, offsets)

    ev.element = recorded
    idx, h = np.arange(1), np.full(1, 1e-5)
    j = judge(ev, idx, np.cos([x0]) + off, h, _first(ev, idx, h), np.zeros(1), Tolerance())
    assert j.status[0] == MISMATCH
    assert min(steps, default=h[0]) >= h[0] / 2**MAX_LEVELS
