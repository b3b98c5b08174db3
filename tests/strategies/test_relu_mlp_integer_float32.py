"""A two-layer ReLU network on integer data (inputs and first weights in {-1, 0, 1}, first bias 0), its loss in
float32: a fifth of the hidden units sit exactly at 0, and moving one first-layer weight, or a row's equal weights
together, turns units at 0 on either way, whose kinks cancel along the move. f is differentiable there, and a
ReLU's slope of 0 at each kink (torch's convention) is a valid chain-rule subgradient that is not that derivative.

Three things failed the right gradient in float32, where it passed in float64:
- a Richardson table (float32 refinement) converged to the derivative along the element's axis and called the
  element wrong; the cancelling-kinks re-check ran only on the first differences' mismatches;
- the move along a row's equal weights, from a point shifted a thousandth of a step, crossed the point's own kinks
  again; the gradient changed by 6% there, alike on both sides, within a float32 difference's bound, and the move
  was taken for one piece of f on which the rule was wrong;
- the convention's subgradient is a corner of the gradients around the point (every unit at 0 turned off at once),
  which random moves around it did not reach.
The right gradient is now inconclusive or passes; planted errors fail as before."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck

B, C = 16, 10


def _mlp(seed: int, d: int, dtype=np.float32, bug: str = ""):
    rng = np.random.default_rng(seed)
    x = rng.integers(-1, 2, (B, d)).astype(dtype)
    params = [
        rng.integers(-1, 2, (d, d)).astype(dtype),
        np.zeros(d, dtype),
        (rng.normal(size=(d, C)) / 10).astype(dtype),
        np.zeros(C, dtype),
    ]
    y = rng.integers(0, C, B)

    def forward(p):
        w1, b1, w2, b2 = (a.astype(dtype) for a in p)  # (float32 inside, whatever the check hands in)
        z = x @ w1 + b1
        h = np.maximum(z, 0)
        s = h @ w2 + b2
        e = np.exp(s - s.max(1, keepdims=True))
        prob = e / e.sum(1, keepdims=True)
        return -np.mean(np.log(prob[np.arange(B), y])), (z, h, prob)

    def grad(p):
        _, (z, h, prob) = forward(p)
        ds = prob.copy()
        ds[np.arange(B), y] -= 1
        ds /= B
        dh = ds @ p[2].T.astype(dtype)
        dz = dh * (z > 0)
        g = [x.T @ dz, dz.sum(0), h.T @ ds, ds.sum(0)]
        if bug == "half dW2":
            g[2] = g[2] / 2
        if bug == "no db1":
            g[1] = np.zeros_like(g[1])
        if bug == "a column at kinks off":  # the column whose units sit at 0 most often, each weight 0.05 more
            g[0] = g[0] + 0.05 * (np.arange(d) == np.argmax((z == 0).sum(0)))
        return g

    return (lambda p: forward(p)[0]), grad, params


@pytest.mark.parametrize(("seed", "d"), [(0, 10), (2, 12)])  # (the second's sums are met at a corner only)
def test_the_right_gradient_is_not_failed_in_float32(seed, d):
    f, g, params = _mlp(seed, d)
    report = backcheck.check(f, params, g, seed=0)
    assert report.status in ("pass", "inconclusive"), report
    assert not report.mismatches, report


def test_the_right_gradient_passes_in_float64():
    f, g, params = _mlp(0, 10, np.float64)
    report = backcheck.check(f, params, g, seed=0)
    assert report.status == "pass", report


@pytest.mark.parametrize("bug", ["half dW2", "no db1", "a column at kinks off"])
def test_planted_errors_still_fail_in_float32(bug):
    f, g, params = _mlp(0, 10, bug=bug)
    report = backcheck.check(f, params, g, seed=0)
    assert report.status == "fail" and report.mismatches, report


def test_torch_float32_network_with_its_own_gradient_is_not_failed():
    torch = pytest.importorskip("torch")
    import backcheck.torch as bt

    # (a row's equal weights moved together, from a point shifted a thousandth of a step: the move crossed the
    # point's own kinks again, and the gradient changed there alike on both sides within a float32 bound)
    rng, d = np.random.default_rng(2), 16
    x = torch.tensor(rng.integers(-1, 2, (B, d)), dtype=torch.float32)
    w1 = torch.tensor(rng.integers(-1, 2, (d, d)), dtype=torch.float32, requires_grad=True)
    b1 = torch.zeros(d, requires_grad=True)
    w2 = torch.tensor(rng.normal(size=(d, C)) / 10, dtype=torch.float32, requires_grad=True)
    b2 = torch.zeros(C, requires_grad=True)
    y = torch.tensor(rng.integers(0, C, B))

    def loss(w1, b1, w2, b2):
        return torch.nn.functional.cross_entropy(torch.relu(x @ w1 + b1) @ w2 + b2, y)

    report = bt.check(loss, (w1, b1, w2, b2))
    assert report.status in ("pass", "inconclusive") and not report.mismatches, report
