"""Random directions over a large array that cross a kink at one element: the element is found by bisection and
judged one by one, and the others are projected again, so an error at another single element is still seen."""

import numpy as np
import pytest

import backcheck
from backcheck.strategies import KINKY_SAMPLES
from backcheck.strategies.projected import MAX_KINKED

N = 50_000
#: The wrong element's relative error: far above any bound, far below what a sample of 256 elements would hit.
WRONG_BY = 0.1


def _point(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=N)


def _wrong_at(k: int):
    def grad(x):
        g = np.cos(x)
        g[k] *= 1 + WRONG_BY
        return g

    return grad


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_jump_does_not_hide_one_wrong_element(seed):
    x = _point(seed)
    x[11] = 0.5  # floor(2 x) jumps there

    def f(x):
        return float(np.sum(np.sin(x)) + np.floor(2 * x[11]))

    wrong = N // 2 + seed
    report = backcheck.check(f, x, _wrong_at(wrong))
    assert report.status == "fail", report
    assert [e.index for e in report.mismatches] == [(wrong,)], report
    right = backcheck.check(f, x, np.cos)
    assert right.status == "inconclusive", right  # the jump: no derivative to compare with there
    assert list(np.flatnonzero(right.element_status == "jump")) == [11], right


@pytest.mark.parametrize("kinks", [1, 5, MAX_KINKED - 8])
def test_a_few_kinks_are_judged_and_the_rest_projected(kinks):
    x = _point(kinks)
    at = np.random.default_rng(kinks).choice(N, size=kinks, replace=False)
    x[at] = 0.0  # |x| at 0, where the rule says 1: a one-sided slope (the mean of the slopes would look smooth)

    def f(x):
        return float(np.sum(np.sin(x)) + np.sum(np.abs(x[at])))

    def grad(x):
        g = np.cos(x)
        g[at] += np.where(x[at] >= 0, 1.0, -1.0)
        return g

    report = backcheck.check(f, x, grad)
    assert report.status == "pass", report
    assert report.leaf("x").n_kinks == kinks, report
    leaf = report.leaf("x")
    assert leaf.floor_kind == "rms" and np.isfinite(leaf.floor), report  # the projection's stated floor
    wrong = int(np.setdiff1d(np.arange(N), at)[N // 3])

    def bad(x):
        g = grad(x)
        g[wrong] *= 1 + WRONG_BY
        return g

    failed = backcheck.check(f, x, bad)
    assert failed.status == "fail", failed
    assert [e.index for e in failed.mismatches] == [(wrong,)], failed


def test_an_array_full_of_kinks_is_sampled_and_says_what_a_sample_cannot_see():
    x = np.maximum(_point(7), 0.0)  # post-ReLU: half the elements at 0
    # the rule's value at 0 is the right-hand slope: directions through the zeros see the kinks
    report = backcheck.check(lambda x: float(np.sum(np.abs(x) * 0.5)), x, lambda x: np.where(x >= 0, 0.5, -0.5))
    assert report.status == "pass", report
    assert any("may go unseen" in note for note in report.notes), report.notes


@pytest.mark.parametrize("seed", [0, 1])
def test_post_relu_inputs_project_their_nonzero_elements_so_one_wrong_one_fails(seed):
    """Half the elements at 0, where |x| has a kink that the rule's right-hand slope makes every direction see:
    the zeros are left out of the directions (a sample of them judged one by one) and the others projected, so
    a single wrong nonzero element fails."""
    x = np.maximum(_point(seed), 0.0)
    wrong = int(np.flatnonzero(x)[1000 + seed])

    def grad(x):
        g = np.where(x >= 0, 0.5, -0.5)
        g[wrong] *= 1 + WRONG_BY
        return g

    report = backcheck.check(lambda x: float(np.sum(np.abs(x) * 0.5)), x, grad)
    assert report.status == "fail", report
    assert [e.index for e in report.mismatches] == [(wrong,)], report


def test_kinks_at_thousands_of_zeros_cost_a_sample_not_every_element():
    """27,000 ReLU inputs, 30% of them exactly 0: the others are projected, a sample of the zeros is judged one by
    one (any value between their slopes is valid), not all 8,100 of them (tens of thousands of evaluations)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=27_000)
    x[rng.random(x.size) < 0.3] = 0.0
    w = rng.normal(size=x.size)
    report = backcheck.check(lambda x: float(np.sum(w * np.maximum(x, 0))), x, lambda x: w * (x > 0))
    assert report.status == "pass", report
    assert report.n_evals <= 8 * KINKY_SAMPLES + 100, report.n_evals
