"""A torch rule at a tie that exists only in float32 (see tests/core/test_float32_only_ties.py): ``max(3a, c)``
with ``c = 3a`` rounded to float32, differenced on float64 copies. Steps finer than a float32 unit of the element
found the float64 slope beside the kink, which the float64 run of the backward (no tie there) met: a share of 3
for ``a`` (d/da = 9 where the slopes are 0 and 3) passed as that run's rounding, with a bound of 6 times the
gradient."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
bt = pytest.importorskip("backcheck.torch")

A = np.array([0.1, 0.7, 0.2, 2.9], dtype=np.float32)


class _Max3(torch.autograd.Function):
    share = 0.5  # the tie's share of the gradient given to 3a

    @staticmethod
    def forward(ctx, a, c):
        z = 3 * a
        ctx.save_for_backward(z, c)
        return torch.maximum(z, c)

    @staticmethod
    def backward(ctx, g):
        z, c = ctx.saved_tensors
        tie = (z == c).to(g.dtype)
        return g * 3 * ((z > c).to(g.dtype) + _Max3.share * tie), g * ((c > z).to(g.dtype) + (1 - _Max3.share) * tie)


@pytest.mark.parametrize("values", [A[:1], A], ids=["one", "four"])
@pytest.mark.parametrize(("share", "right"), [(0.5, True), (1.0, True), (3.0, False), (-2.0, False)])
def test_a_torch_rule_at_a_tie_of_float32_rounding_is_judged_by_its_subgradients(values, share, right):
    _Max3.share = share
    a = torch.tensor(values)
    c = 3 * a
    assert bool((3 * a == c).all()) and not bool((3 * a.double() == c.double()).any())
    report = bt.check(lambda a, c: _Max3.apply(a, c), a, c)
    assert report.status == ("pass" if right else "fail"), report
    assert torch.equal(a, torch.tensor(values))
