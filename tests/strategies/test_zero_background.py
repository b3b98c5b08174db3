"""A convolution's ReLUs over an image of zeros with a blob: the units whose window holds only zeros sit at 0, ten
or more under one element, and the convention's subgradient (ReLU'(0) = 0 in each) is the gradient of one cone of
moves only, where every such unit turns off at once: a corner of the gradients around the point. Random moves
reach it by chance; moves sought from the nearest ones reach it unit by unit. A right rule passes, a rule outside
every such corner fails."""

import numpy as np
import pytest

import backcheck
import backcheck.strategies.nearby as nearby


def _problem(n, seed, slope_at_0=0.0, flipped=False):
    """f, its gradient and the point: an n x n image of zeros with a 3x3 blob, two 3x3 kernels ('same'
    cross-correlation, zero-padded), ReLU, a weighted sum. ``slope_at_0``: the rule's ReLU'(0); ``flipped``: the
    image's gradient through the kernels turned by 180 degrees (a convolution's rule for a cross-correlation)."""
    g = np.random.default_rng(seed)
    image = np.zeros((n, n))
    b = n // 3
    image[b : b + 3, b + 1 : b + 4] = g.uniform(0, 1, (3, 3)).round(2)
    w1, w2 = g.normal(size=(2, 3, 3)), g.normal(size=(2, n, n))

    def conv(x, w):
        p = np.pad(x, 1)
        return np.stack([sum(w[c, i, j] * p[i : i + n, j : j + n] for i in range(3) for j in range(3)) for c in (0, 1)])

    def f(params):
        x, w = params
        return (w2 * np.maximum(conv(x, w), 0)).sum()

    def grad(params):
        x, w = params
        z = conv(x, w)
        d = w2 * ((z > 0) + slope_at_0 * (z == 0))
        p = np.pad(x, 1)
        gx, gw = np.zeros((n + 2, n + 2)), np.zeros_like(w)
        for c in (0, 1):
            for i in range(3):
                for j in range(3):
                    gx[i : i + n, j : j + n] += (w[c, 2 - i, 2 - j] if flipped else w[c, i, j]) * d[c]
                    gw[c, i, j] = (d[c] * p[i : i + n, j : j + n]).sum()
        return gx[1:-1, 1:-1], gw

    return f, grad, (image, w1)


@pytest.mark.parametrize(("n", "seed", "slope_at_0"), [(6, 0, 0.0), (6, 3, 0.0), (8, 5, 0.0), (6, 0, 1.0)])
def test_a_right_rule_on_a_zero_background_passes(n, seed, slope_at_0):
    # (ReLU'(0) = 1 in every unit is the opposite corner's gradient: right too)
    f, grad, point = _problem(n, seed, slope_at_0)
    kept = [a.copy() for a in point]
    report = backcheck.check(f, point, grad)
    assert report.status == "pass", report
    assert report.leaves[0].n_kinks > 0  # (the background's elements were judged at their kinks)
    assert all(np.array_equal(a, b) for a, b in zip(point, kept, strict=True))


def test_random_moves_alone_miss_the_corner(monkeypatch):
    monkeypatch.setattr(nearby, "GUIDED_SAMPLES", 0)
    f, grad, point = _problem(6, 0)
    assert backcheck.check(f, point, grad).status == "fail"  # (a right rule: what the guided moves mend)


@pytest.mark.parametrize(("slope_at_0", "flipped"), [(2.0, False), (-1.0, False), (0.0, True)])
def test_a_wrong_rule_there_still_fails(slope_at_0, flipped):
    f, grad, point = _problem(6, 0, slope_at_0, flipped)
    report = backcheck.check(f, point, grad)
    assert report.status == "fail", report
    assert report.leaves[0].n_mismatch > 0
