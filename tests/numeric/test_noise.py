"""The noise probe (backcheck.numeric.noise): about the true deviation of a function's jitter, whatever its shape,
never far below it; a kink or a jump at the point does not pose as noise; a quantized loss shows its quantum."""

import hashlib

import numpy as np
import pytest

from backcheck.evaluate import Evaluator, Output
from backcheck.numeric.noise import POINTS, estimate_noise
from backcheck.numeric.steps import default_steps
from backcheck.tree import Tree

EPS = float(np.finfo(np.float64).eps)
SIGMA = 1e-9  # far above the rounding of phi (about 1e-15 here), far below its changes along a segment
SEEDS = range(40)
QUANTUM = 1e-3


def _hash(v) -> int:
    """64 bits of the point's bits: deterministic, unrelated from one point to the next (as rounding is)."""
    data = np.ascontiguousarray(v, dtype=np.float64).tobytes()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


# jitters of unit deviation
SHAPES = {
    "uniform": lambda v: (_hash(v) / 2.0**64 * 2 - 1) * np.sqrt(3.0),
    "gaussian": lambda v: float(np.random.default_rng(_hash(v)).standard_normal()),
    # faster than the probe's spacing (about 6e-9): noise to it, as to the finite differences
    "sin": lambda v: float(np.sum(np.sin(1e13 * np.asarray(v, np.float64) + np.arange(v.size)))) * np.sqrt(2 / v.size),
}


def _estimate(f, x, seed, gradient=None):
    ev = Evaluator(Tree(x.copy(), "x"), f, Output.loss("f"), "f")
    ev.baseline()
    return estimate_noise(ev, default_steps(ev.tree), seed, gradient), ev


def _ratios(shape, n, dtype=np.float64):
    """Measured over true deviation, one per seed, at a new point each time."""
    jitter = SHAPES[shape]
    out = []
    for seed in SEEDS:
        x = np.random.default_rng(seed + 100 * n).normal(size=n).astype(dtype)

        def f(v):
            return float(np.sum(np.sin(v.astype(np.float64)))) + SIGMA * jitter(v)

        out.append(_estimate(f, x, seed)[0] / SIGMA)
    return np.array(out)


def _quantized_ratios(n):
    out = []
    for seed in SEEDS:
        x = np.random.default_rng(seed + 100 * n).normal(size=n)
        sigma = QUANTUM / np.sqrt(12.0)  # the deviation of rounding to a grid of QUANTUM
        est = _estimate(lambda v: float(np.round(np.sum(np.sin(v)), 3)), x, seed, gradient=np.cos(x))[0]
        out.append(est / sigma)
    return np.array(out)


@pytest.mark.parametrize("n", [1, 8, 50])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_estimate_is_about_the_true_deviation_never_far_below(shape, n):
    r = _ratios(shape, n)
    # the pooled chi-square of 12 degrees of freedom, times 1.25: below 0.5 once in 2000 draws, never above 2.1
    assert np.mean((r >= 0.5) & (r <= 3.0)) >= 0.9, np.sort(r)
    assert r.min() >= 0.25, np.sort(r)
    # unbiased or conservative: the median is neither below the truth nor far above it
    assert 0.9 <= np.median(r) <= 2.0, np.sort(r)


def test_on_a_float32_grid_too():
    r = _ratios("uniform", 8, np.float32)
    assert np.mean((r >= 0.5) & (r <= 3.0)) >= 0.9 and r.min() >= 0.25, np.sort(r)
    assert 0.9 <= np.median(r) <= 2.0, np.sort(r)


def test_a_quantized_loss_shows_its_quantum():
    r = _quantized_ratios(50)
    assert np.mean((r >= 0.5) & (r <= 3.0)) >= 0.85, np.sort(r)
    assert r.max() <= 3.0, np.sort(r)


def _rounding(ev) -> float:
    return EPS * max(abs(ev.phi0), ev.scale)


KINKS = {
    # ReLU inputs at exactly 0 among others
    "relu": (
        lambda v: float(np.sum(np.maximum(v, 0) * np.linspace(1, 2, v.size))),
        lambda rng: np.where(rng.random(30) < 0.5, 0.0, rng.normal(size=30)),
    ),
    "abs": (lambda v: float(np.sum(np.abs(v))), lambda rng: np.zeros(8)),
    # a sort of values rounded to 0.1 (hundreds of ties, each a kink where two tied values cross: a segment
    # whose elements move each in its own direction crossed some of them and measured 1e5 times the rounding)
    "sort of ties": (
        lambda v: float(np.sum(np.linspace(-1, 2, v.size) ** 3 * np.sort(v))),
        lambda rng: np.round(rng.normal(size=300), 1),
    ),
    # hidden kinks: ReLUs of sums of the inputs that are 0 at the point
    "hidden relu": (
        lambda v: float(np.sum(np.maximum(np.diff(v), 0) * np.linspace(1, 2, v.size - 1))),
        lambda rng: np.repeat(rng.normal(size=4), 8),
    ),
    # a jump of 1 at the point
    "step": (lambda v: float(np.sum(np.sin(v)) + (v[0] >= 0)), lambda rng: np.r_[0.0, rng.normal(size=5)]),
}


@pytest.mark.parametrize("kind", sorted(KINKS))
def test_a_kink_or_a_jump_at_the_point_is_no_noise(kind):
    f, point = KINKS[kind]
    for seed in range(20):
        x = point(np.random.default_rng(seed))
        est, ev = _estimate(f, x, seed, gradient=np.ones_like(x))
        assert est <= 8 * _rounding(ev), (seed, est / _rounding(ev))


def _segments(x, seed):
    """The points each probe visits (recorded from a first run: the probe is deterministic in its seed)."""
    seen = []

    def f(v):
        seen.append(np.array(v, dtype=np.float64))
        return float(np.sum(np.sin(v)))

    _, ev = _estimate(f, x, seed)
    probes = np.array(seen[2:])  # after the two evaluations at the point
    assert len(probes) == 2 * POINTS and ev.n_evals <= 2 + 2 * POINTS
    return probes[:POINTS] - x, probes[POINTS:] - x


@pytest.mark.parametrize("noisy", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_a_kink_crossing_one_probe_is_set_aside(seed, noisy):
    """A kink a step away from the point (along a direction a ReLU's input takes) that one probe crosses
    and the other does not: the estimate stays that of the other probe, not the kink's jolt."""
    x = np.random.default_rng(seed).normal(size=5)
    first, second = _segments(x, seed)
    a = first[-1] - first[0]  # the kink's normal: along the first segment, between its 6th and 7th points
    cut = float(a @ (first[5] + first[6]) / 2)
    crossed = [np.unique(np.sign(seg @ a - cut)).size > 1 for seg in (first, second)]
    assert crossed == [True, False]  # the first probe crosses the kink, the second does not
    jitter = SHAPES["uniform"]
    sigma = SIGMA if noisy else 0.0

    def f(v):
        return float(np.sum(np.sin(v)) + 1e3 * max(float(a @ (v - x)) - cut, 0.0)) + sigma * jitter(v)

    est, ev = _estimate(f, x, seed)
    if noisy:
        assert 0.25 * SIGMA <= est <= 3 * SIGMA
    else:
        assert est <= 8 * _rounding(ev)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_a_narrow_input_moved_into_the_next_binade_stays_on_its_grid(dtype):
    """float16 steps are a tenth of the value: a segment from 0.105 reaches 0.195, where the grid is twice as
    coarse; points rounded there would step unevenly and pose as noise (1e11 rounding units, once)."""
    for seed in range(30):
        x = np.random.default_rng(seed).normal(size=7).astype(dtype)
        terms = float(np.sum(np.abs(np.sin(x.astype(np.float64)))))  # what phi's rounding scales with
        est, _ = _estimate(lambda v: float(np.sum(np.sin(v.astype(np.float64)))), x, seed, np.cos(x.astype(float)))
        assert est <= 64 * EPS * terms, (seed, est / (EPS * terms))
