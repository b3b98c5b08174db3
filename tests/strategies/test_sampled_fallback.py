"""Where random directions cannot vouch for an array (too coarse, through masks or kinks), elements are judged one by
one: a sample that finds none wrong is followed by the rest of the array up to a size, so that one wrong element
among thousands fails rather than passing on the sample."""

import numpy as np
import pytest

import backcheck
from backcheck.strategies import ELEMENTWISE_FALLBACK, FIRST_SAMPLES, KINKY_SAMPLES


def _float32_sine(shape, seed=0):
    x = (np.random.default_rng(seed).normal(size=shape) * 0.5).astype(np.float32)

    def f(p):  # computes in float32: one direction resolves only a few percent of the gradient
        return np.sum(np.sin(np.asarray(p, dtype=np.float32)), dtype=np.float32)

    return x, f


@pytest.mark.parametrize("seed", [0, 1])
def test_one_wrong_element_of_a_float32_kernel_fails_under_auto(seed):
    x, f = _float32_sine((70, 70), seed)
    assert KINKY_SAMPLES < x.size <= ELEMENTWISE_FALLBACK
    at = (40 + seed, 13)

    def wrong(p):
        g = np.cos(np.asarray(p, dtype=np.float64))
        g[at] *= 2.0
        return g.astype(np.float32)

    report = backcheck.check(f, x, wrong, strategy="auto", seed=seed)
    assert report.status == "fail", report
    assert [e.index for e in report.mismatches] == [at], report
    right = backcheck.check(f, x, lambda p: np.cos(p.astype(np.float64)).astype(np.float32), strategy="auto")
    assert right.status == "pass", right
    assert right.leaves[0].n_checked == x.size, right  # every element judged: the pass vouches for each


def test_a_function_bending_below_the_step_passes_element_by_element():
    """tanh(x / 1e-8) at x ~ 1e-8: at the default step its first differences look like jumps with one-sided slopes
    that differ, but each element passes at finer steps; those are no hidden kinks to be moved together."""
    rng = np.random.default_rng(2039)
    x, c = rng.normal(size=5000) * 1e-8, rng.uniform(0.5, 1.5, size=5000)

    def f(x):
        return float(np.sum(c * np.tanh(x / 1e-8)))

    def grad(x):
        return c * (1 - np.tanh(x / 1e-8) ** 2) / 1e-8

    assert backcheck.check(f, x, grad, strategy="full").status == "pass"  # (a wrong rule: test_projected_cost)


@pytest.mark.parametrize("n", [50, 5000])
def test_a_bug_of_the_float32_path_at_one_element_fails_under_auto(n):
    """The backward runs on float32 inputs and on float64 copies; only its float32 path is off, at one element.
    Random directions would count the gap between the two runs as rounding and widen their bound over it."""
    x = np.random.default_rng(n).normal(size=n).astype(np.float32)

    def grad(p):
        g = np.cos(p)
        if p.dtype == np.float32:  # the path the user's float32 training runs
            g = g.copy()
            g[n // 2] *= 1.5
        return g

    report = backcheck.check(lambda p: np.sum(np.sin(p)), x, grad)
    assert report.status == "fail", report
    assert [e.index for e in report.mismatches] == [(n // 2,)], report
    assert backcheck.check(lambda p: np.sum(np.sin(p)), x, np.cos).status == "pass"


def test_a_float32_path_wrong_everywhere_is_judged_within_the_checks_budget():
    n = 40_000
    x = np.random.default_rng(0).normal(size=n).astype(np.float32)
    c = np.random.default_rng(1).normal(size=n).astype(np.float32)

    def grad(x):  # right in its float64 run, 1.5 times too large on the float32 path: every element far
        g = np.cos(x) * c
        return (g * 1.5).astype(np.float32) if x.dtype == np.float32 else g

    r = backcheck.check(lambda x: float(np.sum(np.sin(x) * c)), x, grad)
    assert r.status == "fail"
    assert r.n_evals <= 10 * ELEMENTWISE_FALLBACK // 8  # a sample, not 40,000 elements one by one (165,000)


def _float16_sum(n=20000):
    rng = np.random.default_rng(0)
    c = rng.normal(size=n).astype(np.float16)
    x = rng.normal(size=n).astype(np.float16)

    def f(p):  # float16 products: every difference of one element is rounding of the sum
        return float(np.sum((np.sin(p) * c).astype(np.float32)))

    return x, c, f


def test_a_sample_whose_first_elements_see_nothing_stops_there():
    x, c, f = _float16_sum()
    report = backcheck.check(f, x, lambda p: np.cos(p) * c, strategy="auto")
    assert report.status == "inconclusive", report
    assert report.leaves[0].n_checked == FIRST_SAMPLES, report
    assert any(f"none of the first {FIRST_SAMPLES} elements" in n for n in report.notes), report.notes
    assert report.n_evals < 20 * FIRST_SAMPLES, report.n_evals  # (the whole sample cost 2,082 evaluations)


def test_a_sample_whose_first_elements_find_an_error_judges_all_of_it():
    x, c, f = _float16_sum()
    some = np.arange(x.size) % 8 == 0  # an eighth of the elements wrong: the rest of the sample is judged too

    def wrong(p):
        return np.where(some, 3.0, 1.0).astype(np.float16) * np.cos(p) * c

    report = backcheck.check(f, x, wrong, strategy="auto")
    assert report.status == "fail", report
    assert report.leaves[0].n_checked == KINKY_SAMPLES, report


def test_a_sample_whose_first_elements_are_mostly_wrong_stops_there():
    x, c, f = _float16_sum()
    report = backcheck.check(f, x, lambda p: 3 * np.cos(p) * c, strategy="auto")
    assert report.status == "fail", report
    assert report.leaves[0].n_checked == FIRST_SAMPLES, report


def test_an_error_spread_over_a_large_array_is_measured_by_a_short_sample():
    # every element 1e-3 off (a scale error): group testing stops after a few wrong elements, and a sample of 32
    # whose elements are nearly all wrong tells the share (it localized 32 at 2 log2(N) directions each)
    rng = np.random.default_rng(0)
    c, x = rng.normal(size=20000), rng.normal(size=20000)
    report = backcheck.check(lambda x: float(np.sum(np.sin(x) * c)), x, lambda x: 1.001 * np.cos(x) * c)
    assert report.status == "fail", report
    assert report.n_evals < 1000, report.n_evals  # (4,026 at 1e6 before, with 256 sampled)
    assert any(f"of the first {FIRST_SAMPLES} elements" in n and "are wrong" in n for n in report.notes), report.notes
    assert "too many wrong elements" in report.leaves[0].note, report.leaves[0].note


def test_a_sample_that_could_see_a_sign_flipped_is_judged_whole():
    # float16 differences resolve the gradient to a few tenths of it: no 5%, but a sign flipped on 2% of the
    # elements shows; the first 32 sampled may hold none of them
    rng = np.random.default_rng(300)
    x = rng.normal(size=(300, 300)).astype(np.float16)
    flip = rng.random(x.shape) < 0.02

    def wrong(d, x):
        g = d * (1 - np.tanh(x.astype(np.float32)) ** 2)
        return np.where(flip, -2 * g, g).astype(np.float16)

    report = backcheck.check_layer(lambda x: np.tanh(x.astype(np.float16)), wrong, (x,))
    assert report.status == "fail", report


def test_a_small_array_whose_directions_all_cross_is_not_said_to_have_many_kinks():
    """A smooth float32 ratio with small denominators: every one of its 5 elements is rough along random
    directions; the note says so, not 'more than 32 elements'."""
    rng = np.random.default_rng(24)
    a, b, w = rng.normal(size=5), 1e-4 * (1 + rng.random(5)), rng.normal(size=5)

    def f(p):
        return np.sum(w * p["a"] / p["b"])

    def g(p):
        return {"a": w / p["b"], "b": -w * p["a"] / p["b"] ** 2}

    point = {"a": a.astype(np.float32), "b": b.astype(np.float32)}
    report = backcheck.check(f, point, g, strategy="auto", upcast=False)
    assert report.status == "pass", report
    said = [n for n in report.notes if n.startswith("p['b']: random directions cross kinks")]
    assert said and "along every one of its 5 elements" in said[0], report.notes
    assert not any("more than" in n for n in report.notes), report.notes
