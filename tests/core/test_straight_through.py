"""A straight-through rule (round's backward passing the gradient on) is no derivative of a piecewise constant f:
it fails wherever the inputs sit, also far from 0 where the steps are wide: with the 'locally constant' finding,
or with its elements as mismatches where a step of the differences crosses a step of f."""

import numpy as np
import pytest

import backcheck


@pytest.mark.parametrize("x", [[0.7, -1.2], [100.3, -57.2, 12.1], [30.4, -7.3]])
def test_a_straight_through_rule_fails_as_locally_constant(x):
    x = np.array(x)
    report = backcheck.check(lambda x: float(np.sum(np.round(x))), x, lambda x: np.ones_like(x))
    assert report.status == "fail", report
    kinds = {f.kind for f in report.findings}
    assert kinds <= {"locally constant"}, report
    assert kinds or report.leaf("x").n_mismatch, report  # the finding, or elements that fail
    assert backcheck.check(lambda x: float(np.sum(np.round(x))), x, np.zeros_like).status == "pass"


def test_a_value_computed_with_cancellation_is_no_step_function():
    # (1 + 1e-14 e^x) - 1 moves by whole units of 1: rounding, not a threshold; inconclusive, no finding
    x = np.array([100.0, 40.5, -30.3]) / 100
    r = backcheck.check(lambda x: float(np.sum((1 + 1e-14 * np.exp(x)) - 1)), x, lambda x: 1e-14 * np.exp(x))
    assert r.status == "inconclusive" and not r.findings, r


def test_torch_round_with_an_identity_backward_fails_far_from_zero():
    torch = pytest.importorskip("torch")
    import backcheck.torch as bt

    class RoundSTE(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return torch.round(x)

        @staticmethod
        def backward(ctx, g):
            return g

    report = bt.check_function(RoundSTE, torch.tensor([100.3, -57.2, 12.1], dtype=torch.float64))
    assert report.status == "fail" and "locally constant" in [f.kind for f in report.findings], report
