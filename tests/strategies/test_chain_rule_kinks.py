"""A bias-free convolution and ReLU over a sparse input (three of four values exactly 0): every all-zero patch
gives pre-activations of exactly 0 in every channel, ReLU kinks of both signs meet at the zero pixels, and the
chain rule's value with ReLU'(0) = 0 (torch's) lies outside the gradients around the point: eight channels over a
3-wide patch reach few of their sign patterns, and not the one with every unit off. The right rule failed (one
zero pixel: analytic 0.09, numeric 6.7). It is a chain-rule value of the kinks (each unit's slope taken between
its sides): it passes, and so does ReLU'(0) = 1; a slope of 5 or -1 at 0, a mask read from the wrong tensor, a
flipped kernel and a dropped channel still fail."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck

N, C = 20, 8


def _case(seed: int):
    rng = np.random.default_rng(2100 + seed)
    x = rng.integers(0, 256, N) / 255.0
    x[rng.random(N) < 0.75] = 0.0
    k, w = rng.normal(size=(C, 3)), rng.normal(size=(C, N))

    def pre(x):
        xp = np.pad(x, 1)
        return np.stack([k[c, 0] * xp[:-2] + k[c, 1] * xp[1:-1] + k[c, 2] * xp[2:] for c in range(C)])

    def grad(rule):
        def g(x):
            p = pre(x)
            d = w * rule(p)
            kk = k[:, ::-1] if rule is _flipped else k
            if rule is _channel_dropped:
                d[3] = 0.0
            dp = np.zeros(N + 2)
            for c in range(C):
                dp[:-2] += kk[c, 0] * d[c]
                dp[1:-1] += kk[c, 1] * d[c]
                dp[2:] += kk[c, 2] * d[c]
            return dp[1:-1]

        return g

    return x, (lambda x: float(np.sum(w * np.maximum(pre(x), 0)))), grad, pre


def _torch_rule(p):
    return p > 0


def _one_at_zero(p):
    return p >= 0


def _flipped(p):
    return p > 0


def _channel_dropped(p):
    return p > 0


WRONG = {
    "slope 5 at 0": lambda p: (p > 0) + 5.0 * (p == 0),
    "slope -1 at 0": lambda p: (p > 0) - 1.0 * (p == 0),
    "mask of the wrong tensor": lambda p: np.roll(p, 1, axis=1) > 0,
    "flipped kernel": _flipped,
    "dropped channel": _channel_dropped,
}


@pytest.mark.parametrize("rule", [_torch_rule, _one_at_zero], ids=["relu'(0)=0", "relu'(0)=1"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_chain_rule_value_where_kinks_of_both_signs_meet_is_no_failure(seed, rule):
    x, f, grad, pre = _case(seed)
    assert (pre(x) == 0).sum() >= 40  # (the kinks the case is about)
    report = backcheck.check(f, x, grad(rule), strategy="full", seed=seed)
    assert report.status == "pass", report


@pytest.mark.parametrize("name", list(WRONG))
@pytest.mark.parametrize("seed", [0, 1])
def test_wrong_rules_at_the_same_kinks_still_fail(seed, name):
    x, f, grad, _pre = _case(seed)
    g = grad(WRONG[name])
    right = grad(_torch_rule)(x)
    report = backcheck.check(f, x, g, strategy="full", seed=seed)
    assert report.status == "fail", report
    named = [e.index[0] for e in report.leaves[0].worst if e.status == "mismatch"]
    assert named, report
    if "at 0" in name:  # wrong at the point only: the elements named are those it is wrong at
        assert all(g(x)[i] != right[i] for i in named), report
