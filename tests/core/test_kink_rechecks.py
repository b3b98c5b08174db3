"""Elements whose claimed value lies outside their one-sided slopes are re-checked from gradients around the point.
Two ways that went wrong: in float32, shifts below a unit in the last place rounded back onto the point, whose
own (wrong) gradient then counted as one "around" it; and at a vertical tangent (sqrt at 0) the gradients around
the point take any size, so any claim was among them. Neither may pass a wrong or meaningless value."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck

MARGIN = 0.3125


def hinge_forward(a, p, n):
    """A triplet hinge: mean over rows of max(|a - p|^2 - |a - n|^2 + margin, 0)."""
    d = np.sum((a - p) ** 2 - (a - n) ** 2, axis=1) + MARGIN
    return np.sum(np.maximum(d, 0)) / a.shape[0]


def _hinge_backward(at_hinge: float):
    def backward(gy, a, p, n):
        d = np.sum((a - p) ** 2 - (a - n) ** 2, axis=1) + MARGIN
        mask = ((d > 0) + at_hinge * (d == 0)).astype(a.dtype)[:, None]
        k = 2 * gy * mask / a.shape[0]
        return k * (n - p), k * (p - a), k * (a - n)

    return backward


def _on_the_hinge() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    a, p, n = (rng.normal(size=(4, 3)) * 0.5 for _ in range(3))
    a[0], p[0], n[0] = 0.0, [0.5, 0, 0], [0.75, 0, 0]  # row 0's margin term is exactly 0 in every dtype
    return a, p, n


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_value_outside_the_one_sided_slopes_at_a_hinge_fails_in_float32_too(dtype) -> None:
    inputs = tuple(v.astype(dtype) for v in _on_the_hinge())
    for valid in (0.0, 0.5, 1.0):  # 0 and 1 are the one-sided slopes' ends; 0.5 lies between
        assert backcheck.check_layer(hinge_forward, _hinge_backward(valid), inputs).status == "pass", valid
    wrong = backcheck.check_layer(hinge_forward, _hinge_backward(2.0), inputs)
    assert wrong.status == "fail" and any(e.name.endswith("[0, 0]") for e in wrong.mismatches), wrong


@pytest.mark.parametrize("eps", [1e-8, 1e-6, 1e-4])
def test_a_claim_at_a_vertical_tangent_is_inconclusive_and_the_rest_judged(eps: float) -> None:
    x = np.array([0.0, 1.0, 2.0])
    report = backcheck.check(
        lambda x: float(np.sum(np.sqrt(np.maximum(x, 0.0)))), x, lambda x: 0.5 / np.sqrt(np.maximum(x, eps))
    )
    assert report.status == "inconclusive", report
    (leaf,) = report.leaves
    assert leaf.counts == {"ok": 2, "noisy": 1}
    if eps == 1e-8:  # a claim beyond every one-sided slope the steps saw: re-checked around the point, and told
        assert any("grows without bound" in n for n in report.notes), report.notes
