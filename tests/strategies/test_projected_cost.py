"""Random directions never cost more than checking every element: beyond as many directions as elements,
each element is checked one by one (exact, 2 evaluations each)."""

import numpy as np
import pytest

import backcheck


def _sine(seed, n):
    """x, c and the counted ``sum(sin(x) * c)`` (with its call count)."""
    rng = np.random.default_rng(seed)
    x, c = rng.standard_normal(n), rng.standard_normal(n)
    return (x, c, *_counted(c))


def _counted(c):
    calls = {"n": 0}

    def f(x):
        calls["n"] += 1
        return float(np.sum(np.sin(x) * c))

    return f, calls


@pytest.mark.parametrize("strategy", ["projected", "auto"])
def test_more_directions_than_elements_become_an_elementwise_check(strategy):
    rng = np.random.default_rng(0)
    n = 12
    x, c = rng.standard_normal(n), rng.standard_normal(n)
    f, calls = _counted(c)
    report = backcheck.check(f, x, lambda x: np.cos(x) * c, strategy=strategy, samples=10**6)
    assert report.status == "pass"
    assert report.leaves[0].n_checked == n  # every element judged, none left to chance
    assert calls["n"] <= 2 * n + 8
    assert any("one by one" in note for note in report.notes)
    def wrong(x):
        return np.cos(x) * c * (1 + 1e-3 * (np.arange(n) == 5))

    bad = backcheck.check(f, x, wrong, strategy=strategy, samples=10**6)
    assert bad.status == "fail" and [e.index for e in bad.leaves[0].worst if e.status == "mismatch"] == [(5,)]


def test_a_detection_size_that_needs_more_directions_than_elements_checks_each_element():
    rng = np.random.default_rng(1)
    n = 20
    x, c = rng.standard_normal(n), rng.standard_normal(n)
    f, calls = _counted(c)
    report = backcheck.check(f, x, lambda x: np.cos(x) * c, strategy="projected", detect=1e-13)
    # each element checked; their bounds (about 1e-8 of the gradient) cannot see 1e-13 either: not vouched
    assert report.status == "inconclusive" and report.leaves[0].n_checked == n
    assert "judged one by one" in report.leaves[0].note and "detect=1e-13" in report.leaves[0].note
    assert calls["n"] <= 2 * n + 2 + 2 + 2  # baseline, the one direction that told, the elements
    wide = backcheck.check(f, x, lambda x: np.cos(x) * c, strategy="projected")  # the default: three directions
    assert wide.leaves[0].n_checked == 0 and wide.n_evals <= 7


def test_fixed_directions_fewer_than_elements_stay_directions():
    rng = np.random.default_rng(2)
    n = 50
    x, c = rng.standard_normal(n), rng.standard_normal(n)
    f, calls = _counted(c)
    report = backcheck.check(f, x, lambda x: np.cos(x) * c, strategy="projected", samples=5)
    assert report.status == "pass" and report.leaves[0].n_checked == 0
    assert calls["n"] == 1 + 2 * 5  # one call at the point: the second is made only for a verdict but a pass


def test_random_directions_defer_the_second_call_at_the_point_but_still_tell_a_random_function():
    rng = np.random.default_rng(3)
    n = 10_000
    x, c = rng.standard_normal(n), rng.standard_normal(n)
    noise = np.random.default_rng(4)

    def dropout(x):  # a generator the check can find and replay
        return float(np.sum(np.sin(x) * c * (noise.random(n) > 0.1)))

    def grad(x):
        return np.cos(x) * c * (noise.random(n) > 0.1)

    with pytest.raises(backcheck.NondeterministicError, match="random"):
        backcheck.check(dropout, x, grad, strategy="auto", random="error")
    replayed = backcheck.check(dropout, x, grad, strategy="auto")
    assert replayed.ok and any("replayed" in note for note in replayed.notes), str(replayed)

    import os

    def unseeded(x):  # fresh randomness that nothing replays
        return float(np.sum(np.sin(x) * c) * (1 + int.from_bytes(os.urandom(8), "little") / 2.0**64 / 1e3))

    with pytest.raises(backcheck.NondeterministicError, match="random"):
        backcheck.check(unseeded, x, lambda x: np.cos(x) * c, strategy="auto")


@pytest.mark.parametrize("strategy", ["auto", "projected"])
def test_a_failing_verdict_makes_the_deferred_second_call_first(strategy):
    x, c, f, _ = _sine(5, 10_000)
    seen = []

    def watched(x):
        seen.append(np.array_equal(x, x0))
        return f(x)

    x0 = x.copy()
    bad = backcheck.check(watched, x, lambda x: 1.01 * np.cos(x) * c, strategy=strategy, atol=1e-9, rtol=0.0)
    assert bad.status == "fail"
    assert sum(seen) == 2  # the point twice: its first call and the deferred one before the verdict


@pytest.mark.parametrize("k", [1.0, 1.5])
def test_directions_over_elements_smaller_than_their_steps_are_measured_finer(k):
    # f bends on the scale of its tiny parameters (tanh(x / 1e-8) at x ~ 1e-8), far below the default step
    # (about 6e-6 of max(|x|, 1)): a failing direction is measured again at finer steps, where a right rule
    # agrees and a wrong one still disagrees
    rng = np.random.default_rng(2039)
    x, c = rng.normal(size=5000) * 1e-8, rng.uniform(0.5, 1.5, size=5000)
    f = lambda x: np.sum(c * np.tanh(x / 1e-8))  # noqa: E731
    r = backcheck.check(f, x, lambda x: k * c * (1 - np.tanh(x / 1e-8) ** 2) / 1e-8, strategy="projected")
    assert r.status == ("pass" if k == 1.0 else "fail"), r
