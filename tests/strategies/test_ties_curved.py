"""Elements tied at one kink of a strongly curved function (several probabilities on a log's clip bound, 1e-7):
the group's one-sided slopes at the first step (6e-6, sixty times the bound) are a tenth of the slopes at the
bound, and moving the group there decided nothing; they were taken for a differentiable direction whose slope
the summed gradient missed (the right rule, each element's right slope, failed with two elements or more, in
torch's own clamp(min=eps).log() too). The group's step is halved while its slopes still move with it."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck

EPS = 1e-7


def _nll(p):
    return float(np.sum(-np.log(np.clip(p, EPS, 1.0))))


@pytest.mark.parametrize("at_bound", [2, 4, 16])
def test_right_slopes_at_a_shared_clip_bound_pass(at_bound):
    p = np.full(at_bound + 2, 0.3)
    p[:at_bound] = EPS
    report = backcheck.check(_nll, p, lambda p: -1 / p)
    assert report.status == "pass", report


def test_the_left_slope_passes_too():
    p = np.array([EPS, EPS, 0.3])
    report = backcheck.check(_nll, p, lambda p: np.where(p <= EPS, 0.0, -1 / p))
    assert report.status == "pass", report


def test_a_max_routed_to_every_tie_of_a_curved_function_still_fails():
    x = np.array([[1.0, 1.0, 0.2], [0.5, 2.0, 2.0]])

    def f(x):
        return float(np.sum(np.exp(x.max(axis=1))))

    def every_tie(x):
        m = x.max(axis=1, keepdims=True)
        return (x == m) * np.exp(m)

    report = backcheck.check(f, x, every_tie)
    assert report.status == "fail", report


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_clamp_log_at_its_bound_passes(dtype):
    torch = pytest.importorskip("torch")
    bt = pytest.importorskip("backcheck.torch")
    p = torch.tensor([EPS, EPS, 0.5, 0.2], dtype=getattr(torch, dtype), requires_grad=True)
    report = bt.check(lambda p: p.clamp(min=EPS).log().sum(), p)
    assert report.status == "pass", report
