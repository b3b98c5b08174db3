"""Steps far beyond the scale on which f bends: a float32 kernel whose inputs sit near 1e4 takes steps of 1e4's
size (about 49), over which a smooth softmax or log-sum-exp saturates and looks like a max. The one-sided slopes
then keep a gap at every step, which is no kink at the point: it must neither excuse a wrong rule nor vouch for
a right one."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


def c32(a):
    return np.asarray(a, np.float32)


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def focal(z, y, gamma=2.0):
    pt = _softmax(z)[np.arange(z.shape[0]), y]
    return (-((1 - pt) ** gamma) * np.log(pt)).mean()


def focal_backward(dout, z, y, gamma=2.0, drop_modulation=False):
    p = _softmax(z)
    n = z.shape[0]
    pt = p[np.arange(n), y]
    onehot = np.zeros_like(p)
    onehot[np.arange(n), y] = 1
    if drop_modulation:  # the bug: (1 - pt)^gamma treated as a constant
        return dout * ((1 - pt) ** gamma)[:, None] * (p - onehot) / n
    dpt = gamma * (1 - pt) ** (gamma - 1) * np.log(pt) - (1 - pt) ** gamma / pt
    return dout * dpt[:, None] * pt[:, None] * (onehot - p) / n


def _focal_check(seed, drop_modulation):
    rng = np.random.default_rng(seed)
    z = c32(rng.normal(size=(3, 5)) + 1e4)
    y = rng.integers(0, 5, size=3)

    def forward(z, y):
        return c32(focal(c32(z), y))

    def backward(d, z, y):
        return c32(focal_backward(c32(d), c32(z), y, drop_modulation=drop_modulation)), None

    return backcheck.check_layer(forward, backward, (z, y))


@pytest.mark.parametrize("seed", range(3))
def test_a_dropped_term_of_a_float32_focal_loss_near_1e4_fails_not_excused_as_kinks(seed):
    # the bug is 37% of the largest gradient element: a Richardson table finds it, and the slopes at the
    # element's own step (a saturated softmax) must not excuse it as a kink; they are taken at the table's step
    wrong = _focal_check(seed, drop_modulation=True)
    assert wrong.status == "fail", wrong
    assert wrong.leaves[0].n_kinks == 0, wrong
    right = _focal_check(seed, drop_modulation=False)
    assert right.status == "pass", right


def lse_pool(x, r=2.0):
    y = r * x
    m = y.max(axis=(2, 3), keepdims=True)
    return (m + np.log(np.exp(y - m).mean(axis=(2, 3), keepdims=True)))[:, :, 0, 0] / r


def lse_pool_backward(dout, x, r=2.0, times=1.0):
    w = _softmax((r * x).reshape(*x.shape[:2], -1)).reshape(x.shape)
    return times * dout[:, :, None, None] * w


@pytest.mark.parametrize("seed", range(2))
def test_a_saturated_log_sum_exp_pool_is_no_kink_whatever_the_rule(seed):
    # inputs of spread 0.01 near 1e4 in float32 (ten quanta apart): at steps f resolves, it looks like a max of
    # tied elements; the check cannot see the smooth function beneath, so it vouches for no rule
    rng = np.random.default_rng(seed)
    x = c32(rng.normal(size=(3, 2, 3, 3)) * 0.01 + 1e4)
    dout = c32(np.random.default_rng(seed + 7).normal(size=(3, 2)))

    def forward(x):
        return c32(lse_pool(c32(x)))

    for times in (1.0, 2.0):

        def backward(d, x, times=times):
            return c32(lse_pool_backward(c32(d), c32(x), times=times))

        report = backcheck.check_layer(forward, backward, (x,), dout)
        assert report.status != "pass" or report.leaves[0].n_kinks < x.size, report
        assert report.status != "fail" or times != 1.0, report


def test_elements_rechecked_nearby_where_f_leaves_its_domain_are_judged_closer_not_an_error():
    # -log(softmax) of float32 logits near 1e4: steps of 49 saturate the softmax; elements whose claims lie
    # outside the one-sided slopes are rechecked a few dozen steps away, where p underflows to 0 and f is inf.
    # The shift is tried again closer; the rule (half the one-hot term) is wrong, and the check says so
    rng = np.random.default_rng(3)
    z = c32(rng.normal(size=(4, 6)) + 1e4)
    y = rng.integers(0, 6, size=4)

    def forward(z, y):
        p = _softmax(c32(z))
        return c32(-np.log(p[np.arange(len(y)), y]).mean())

    def backward(d, z, y):
        p = _softmax(c32(z))
        p[np.arange(len(y)), y] -= 0.5  # the bug: half the one-hot term
        return c32(d * p / len(y)), None

    report = backcheck.check_layer(forward, backward, (z, y))
    assert report.status == "fail", report
