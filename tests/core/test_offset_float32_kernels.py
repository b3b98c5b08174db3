"""Float32 kernels of data far from 0 beside its spread (a batch of 100 + N(0, 1), features of mean 1e4): a
normalization, a variance, a softmax or a log-sum-exp bends on the scale of the spread, while steps of |x|'s scale
cross it many times over; and the backward pass's own float32 arithmetic loses digits to ``x - mean(x)``. A right
rule must never fail there (it passes where the check can vouch for it, else it is inconclusive), and a wrong one
must still fail where the function resolves its gradient."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.numeric.steps import FINEST_TABLE, SPREADS, default_steps, step_base, table_scale
from backcheck.tree import Tree


def c32(a):
    return np.asarray(a, np.float32)


def _centred(x):
    return x - x.mean(-1, keepdims=True)


def layernorm(x):
    return _centred(x) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)


def layernorm_backward(dout, x, bug=None):
    std = np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    xh, m = _centred(x) / std, x.shape[-1]
    if bug == "no_mean":  # the mean's own gradient dropped
        return (m * dout - xh * (dout * xh).sum(-1, keepdims=True)) / (m * std)
    return (m * dout - dout.sum(-1, keepdims=True) - xh * (dout * xh).sum(-1, keepdims=True)) / (m * std)


def variance(x):
    return x.var(-1, ddof=1)


def variance_backward(dout, x, bug=None):
    n = x.shape[-1] - (0 if bug == "ddof" else 1)  # the bug: the biased variance's rule for the unbiased one
    return dout[..., None] * 2 * _centred(x) / n


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def softmax_backward(dout, x, bug=None):
    y = softmax(x)
    if bug == "no_sum":
        return y * dout
    return y * (dout - (dout * y).sum(-1, keepdims=True))


KERNELS = {
    "layernorm": (layernorm, layernorm_backward, "no_mean"),
    "variance": (variance, variance_backward, "ddof"),
    "softmax": (softmax, softmax_backward, "no_sum"),
}


def _check(name, offset, spread, seed, bug=None):
    f, b, _ = KERNELS[name]
    rng = np.random.default_rng(seed)
    x = c32(rng.normal(size=(3, 6)) * spread + offset)
    dout = c32(rng.normal(size=np.shape(f(x))))
    before = x.copy()
    report = backcheck.check_layer(lambda x: c32(f(c32(x))), lambda d, x: c32(b(c32(d), c32(x), bug)), (x,), dout)
    np.testing.assert_array_equal(x, before)
    return report


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize(("offset", "spread"), [(100.0, 1.0), (100.0, 0.01), (1e4, 1.0), (1e4, 0.01)])
def test_a_right_rule_never_fails(name, offset, spread):
    for seed in range(3):
        report = _check(name, offset, spread, seed)
        assert report.status in ("pass", "inconclusive"), f"seed {seed}:\n{report}"


@pytest.mark.parametrize("name", ["layernorm", "variance"])
def test_a_right_rule_passes_where_the_spread_is_resolved(name):
    # (100 + N(0, 1) in float32: units in the last place of 7.6e-6, five decimal digits of the spread)
    for seed in range(3):
        report = _check(name, 100.0, 1.0, seed)
        assert report.status == "pass", f"seed {seed}:\n{report}"


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize(("offset", "spread"), [(100.0, 1.0), (1e4, 1.0), (100.0, 0.01)])
def test_a_wrong_rule_still_fails(name, offset, spread):
    for seed in range(2):
        report = _check(name, offset, spread, seed, bug=KERNELS[name][2])
        assert report.status == "fail", f"seed {seed}:\n{report}"


def test_a_scaled_rule_never_passes():
    f, b, _ = KERNELS["variance"]
    for offset, spread in [(100.0, 1.0), (1e4, 1.0), (100.0, 0.01)]:
        rng = np.random.default_rng(0)
        x = c32(rng.normal(size=(3, 6)) * spread + offset)
        dout = c32(rng.normal(size=3))
        report = backcheck.check_layer(lambda x: c32(f(c32(x))), lambda d, x: c32(1.3 * b(c32(d), c32(x))), (x,), dout)
        assert report.status == "fail", report


def test_a_gradient_rounded_to_zero_is_not_dead():
    # x equal to its row's float32 mean: x - mean(x) is exactly 0 in float32, its true gradient is not
    rng = np.random.default_rng(1)
    x = c32(rng.normal(size=(4, 6)) * 0.01 + 1e4)
    dout = c32(rng.normal(size=4))
    report = backcheck.check_layer(
        lambda x: c32(variance(c32(x))), lambda d, x: c32(variance_backward(c32(d), c32(x))), (x,), dout
    )
    assert report.status != "fail", report


def test_a_random_backward_is_not_excused_as_rounding():
    # a backward pass that adds noise: the draws replayed at every call (the stream as the check found it), the
    # noise is one wrong rule, not rounding; it adds a term dout does not scale, a nonlinear backward too
    f, b, _ = KERNELS["variance"]
    rng = np.random.default_rng(0)
    x = c32(rng.normal(size=(3, 6)) + 1e4)
    dout = c32(rng.normal(size=3))
    noise = np.random.default_rng(5)

    def noisy(d, x):
        g = b(c32(d), c32(x))
        return c32(g + 0.05 * np.abs(g).max() * noise.standard_normal(g.shape))

    report = backcheck.check_layer(lambda x: c32(f(c32(x))), noisy, (x,), dout)
    assert report.status == "fail", report
    assert report.leaves[0].n_mismatch >= 12 and "nonlinear backward" in [f.kind for f in report.findings], report


def test_own_rounding_is_said():
    report = _check("variance", 1e4, 1.0, 0)
    assert report.status == "pass", report
    assert any("backward pass's own rounding" in n for n in report.notes), report.notes


def batchnorm(x):
    xc = x - x.mean(0)
    return xc / np.sqrt((xc**2).mean(0) + np.float32(1e-5))


def batchnorm_backward(d, x, scale=1.0):
    n, xc = x.shape[0], x - x.mean(0)
    istd = 1 / np.sqrt((xc**2).mean(0) + np.float32(1e-5))
    xh = xc * istd
    return np.float32(scale) * istd / n * (n * d - d.sum(0) - xh * (d * xh).sum(0))


@pytest.mark.parametrize(("offset", "spread"), [(1e3, 1.0), (100.0, 0.1), (1e4, 1.0)])
def test_a_batch_norm_right_never_fails_and_five_percent_off_never_passes(offset, spread):
    for seed in range(3):
        x = c32(offset + spread * np.random.default_rng(seed).standard_normal((8, 3)))
        for scale in (1.0, 1.05):
            report = backcheck.check_layer(
                lambda x: c32(batchnorm(c32(x))), lambda d, x, s=scale: c32(batchnorm_backward(c32(d), c32(x), s)), x
            )
            assert report.status != ("fail" if scale == 1.0 else "pass"), f"seed {seed}, x{scale}:\n{report}"


def layernorm3(x):  # over 3 features, in float32 throughout (the arithmetic of a float32 model)
    xc = x - x.mean(-1, keepdims=True)
    return xc / np.sqrt((xc**2).mean(-1, keepdims=True) + np.float32(1e-5))


def layernorm3_backward(d, x, scale=1.0):
    m, xc = x.shape[-1], x - x.mean(-1, keepdims=True)
    std = np.sqrt((xc**2).mean(-1, keepdims=True) + np.float32(1e-5))
    xh = xc / std
    return np.float32(scale) * (m * d - d.sum(-1, keepdims=True) - xh * (d * xh).sum(-1, keepdims=True)) / (m * std)


@pytest.mark.parametrize(("offset", "spread", "seed"), [(100.0, 0.1, 0), (100.0, 0.1, 3), (1e3, 1.0, 0), (1e3, 1.0, 3)])
def test_a_layer_norm_of_rows_tighter_than_the_array_never_fails(offset, spread, seed):
    # rows of 3 values: some sit 0.02 spreads apart where the array's spread is 0.1, and the layer norm bends on
    # the row's; tables that started at 8 of the array's spreads settled 20% off the right slope
    x = c32(offset + spread * np.random.default_rng(seed).standard_normal((8, 3)))
    rows = np.std(x.astype(np.float64), axis=1)
    assert rows.min() < np.std(x.astype(np.float64)) / 4  # (what the case is about)
    for scale in (1.0, 1.05):
        report = backcheck.check_layer(
            lambda x: c32(layernorm3(c32(x))), lambda d, x, s=scale: c32(layernorm3_backward(c32(d), c32(x), s)), x
        )
        assert report.status != ("fail" if scale == 1.0 else "pass"), f"x{scale}:\n{report}"


class TestTableScale:
    def test_arrays_near_zero_keep_the_magnitude_rule(self):
        x = c32(np.random.default_rng(0).normal(size=50) * 3)
        np.testing.assert_array_equal(table_scale(Tree(x, "x")), np.maximum(np.abs(x), 1.0))

    def test_offset_arrays_start_their_tables_at_eight_spreads(self):
        x = c32(1e3 + np.random.default_rng(0).normal(size=400) * 2.0)
        spread = float(np.std(x, dtype=np.float64))
        np.testing.assert_allclose(table_scale(Tree(x, "x")), np.full(x.size, SPREADS * spread))
        # a single difference keeps |x|'s scale
        np.testing.assert_allclose(default_steps(Tree(x, "x")), step_base(np.float32) * np.abs(x.astype(np.float64)))

    def test_float64_keeps_the_magnitude_rule_unless_the_output_is_narrow(self):
        x = 1e3 + np.random.default_rng(0).normal(size=400) * 2.0
        np.testing.assert_array_equal(table_scale(Tree(x, "x")), np.abs(x))
        narrow = table_scale(Tree(x, "x"), out_eps=float(np.finfo(np.float32).eps))  # a float32 kernel inside
        np.testing.assert_allclose(narrow, np.full(x.size, SPREADS * np.std(x)))

    def test_never_finer_than_a_share_of_the_magnitude(self):
        x = c32(np.full(10, 1e4))  # no spread: the tables start FINEST_TABLE of |x|'s scale
        np.testing.assert_allclose(table_scale(Tree(x, "x")), FINEST_TABLE * 1e4)
        assert table_scale(Tree(c32([1e4]), "x")).tolist() == [1e4]  # one value: no spread at all

    def test_non_finite_entries_are_left_out_of_the_spread(self):
        x = c32(100 + np.random.default_rng(1).normal(size=20)).astype(np.float64)
        masked = c32(x)
        masked[3] = -np.inf
        keep = np.isfinite(masked)
        scale = table_scale(Tree(masked, "x"))[keep]
        expected = np.maximum(SPREADS * np.std(x[keep]), FINEST_TABLE * np.abs(x[keep]))
        np.testing.assert_allclose(scale, np.minimum(np.abs(x[keep]), expected), rtol=1e-6)

    def test_an_element_takes_the_least_spread_of_its_lines(self):
        rng = np.random.default_rng(2)
        x = c32(1e3 + rng.normal(size=(6, 4)) * 2.0)
        x[2] = c32(1e3 + np.array([0.0, 0.01, -0.01, 0.02]))  # one row far tighter than the rest
        x64 = x.astype(np.float64)
        lines = np.minimum(np.std(x64, axis=1, keepdims=True), np.std(x64, axis=0, keepdims=True))
        least = np.minimum(lines, np.std(x64))
        expected = np.minimum(np.abs(x64), np.maximum(SPREADS * least, FINEST_TABLE * np.abs(x64)))
        np.testing.assert_allclose(table_scale(Tree(x, "x")), expected.reshape(-1), rtol=1e-6)
        # the tight row starts at its finest (8 of its spreads are finer still), the array's spread says 8 x 2
        np.testing.assert_allclose(table_scale(Tree(x, "x")).reshape(6, 4)[2], FINEST_TABLE * x64[2], rtol=1e-6)

    def test_a_line_of_equal_values_has_no_spread_and_a_lone_value_no_line(self):
        x = c32(1e3 + np.random.default_rng(3).normal(size=(4, 3)))
        x[:, 1] = c32(1e3)  # a column of equal values: its tables start at their finest
        scale = table_scale(Tree(x, "x")).reshape(4, 3)
        np.testing.assert_allclose(scale[:, 1], FINEST_TABLE * 1e3)
        column = c32(1e3 + np.random.default_rng(3).normal(size=(5, 1)))  # lines of one value along axis 1
        spread = np.std(column.astype(np.float64))
        np.testing.assert_allclose(table_scale(Tree(column, "x")), SPREADS * spread, rtol=1e-6)


@pytest.mark.parametrize("factor", [2.0, -1.0])
def test_a_move_that_crosses_a_branch_is_no_rounding(factor):
    # where(t != 1, 3x, x) with t exactly +-1 checked too: moving every input by a few units in the last place
    # flips t != 1, and the gradient's jump there was taken for the backward pass's own rounding (inconclusive)
    torch = pytest.importorskip("torch")
    bt = pytest.importorskip("backcheck.torch")

    def f(x, t):
        return torch.where(t != 1, 3 * x, x)

    class Scaled(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, t):
            ctx.save_for_backward(t)
            return f(x, t)

        @staticmethod
        def backward(ctx, go):
            (t,) = ctx.saved_tensors
            return factor * torch.where(t != 1, 3 * go, go), torch.zeros_like(t)

    x = torch.tensor([-8.48, -1.77, -4.32, -2.40, -7.95]).requires_grad_()
    t = torch.tensor([1.0, 1.0, 1.0, 1.0, -1.0]).requires_grad_()
    assert bt.check(Scaled.apply, x, t).leaves[0].status == "fail"


def _wrong(report):
    return {(leaf.name, e.index) for leaf in report.leaves for e in leaf.worst if e.status in ("mismatch", "dead")}


_W = np.random.default_rng(19).normal(size=8)
_CLIPPED = c32([0, 1, 2, 3, 4, 5, 2, 4])  # three elements on the bounds of clip(x, 1, 4)


def _clip_rule(x, bug=None):
    x = np.asarray(x, np.float64)
    g = _W * ((x > 1) & (x < 4))
    if bug == "dead":  # x[3] = 3 inside (1, 4), its slope w[3] said 0
        g = _W * ((x > 1) & (x < 2.5))
    elif bug == "bump":  # x[6], 2e-3 of itself
        g[6] *= 1.002
    elif bug == "threshold":  # a rule whose own threshold sits on the data point x[5] = 5, where f is flat
        g = _W * ((x > 1) & (x <= 5)) * (x != 4)
    return g


@pytest.mark.parametrize("strategy", ["full", "auto", "sparse", "projected"])
@pytest.mark.parametrize(("bug", "culprit"), [(None, None), ("dead", 3), ("bump", 6)])
def test_float32_kinks_of_other_elements_excuse_no_error(strategy, bug, culprit):
    # float32 integer data at a clip's bounds: moved a few units in their last place, the elements at the bounds
    # flip their masks, and their gradients' jumps (a share of the gradient) were taken into the array's RMS of
    # its rounding, which then excused any error of every element below 4 times it (inconclusive, bound 1.4)
    report = backcheck.check(
        lambda x: np.sum(_W * np.clip(x, 1, 4)), _CLIPPED, lambda x: _clip_rule(x, bug), strategy=strategy
    )
    if bug is None:
        assert report.status == "pass", report
    else:
        assert report.status == "fail" and _wrong(report) == {("x", (culprit,))}, report


@pytest.mark.parametrize("strategy", ["full", "auto", "sparse"])
def test_float32_a_rules_own_jump_is_no_rounding(strategy):
    # a hard tanh whose rule's own thresholds sit on the points x = -2 and 2, where f is flat: moved a few units in
    # the last place, the gradient there jumps by its whole error, which was taken for the backward pass's own
    # rounding (inconclusive, bound 8 for an error of 2)
    w = np.random.default_rng(18).normal(size=8)
    x = c32([-2, -1, 0, 1, 2, 1, -1, 0.5])
    report = backcheck.check(
        lambda x: np.sum(w * np.clip(x, -1, 1)), x, lambda x: w * (np.abs(x) <= 2), strategy=strategy
    )
    assert report.status == "fail" and ("x", (4,)) in _wrong(report), report


@pytest.mark.parametrize("strategy", ["full", "sparse"])
def test_float32_an_interpolation_at_its_knots_excuses_no_error(strategy):
    # np.interp of float32 points on its knots (1, 2, 4): the slope of the last segment 0.4% off at x = 4.5
    xp, fp = np.array([0.0, 1, 2, 4, 5]), np.array([0.0, 2, 1, 3, -1])
    x, w = c32([0.5, 1, 2, 3, 4, 2.5, 4.5]), np.random.default_rng(20).normal(size=7)
    slopes = np.diff(fp) / np.diff(xp)

    def rule(x, bump):
        i = np.clip(np.searchsorted(xp, np.asarray(x), "right") - 1, 0, slopes.size - 1)
        return w * slopes[i] * np.where(np.asarray(x) > 4, bump, 1.0)

    f = lambda x: np.sum(w * np.interp(x, xp, fp))  # noqa: E731
    assert backcheck.check(f, x, lambda x: rule(x, 1.0), strategy=strategy).status == "pass"
    report = backcheck.check(f, x, lambda x: rule(x, 1.004), strategy=strategy)
    assert report.status == "fail" and _wrong(report) == {("x", (6,))}, report


def _ties_cases():
    a, b = c32([1, 2, 0, -1, 3]), c32([1, 1, 0, 2, 3])
    w5 = np.random.default_rng(14).normal(size=5)

    def maximum_rule(p, bump):
        m = np.asarray(p["a"]) >= np.asarray(p["b"])
        return {"a": w5 * m, "b": w5 * ~m * np.where(np.arange(5) == 3, bump, 1.0)}

    xs = c32([3, 1, 2, 1, 3, 0, 2, 1])

    def sort_rule(x, bump):
        o = np.zeros(8)
        o[np.argsort(np.asarray(x), kind="stable")] = _W
        return o * np.where(np.arange(8) == 5, bump, 1.0)

    return [
        (lambda p: np.sum(w5 * np.maximum(p["a"], p["b"])), {"a": a, "b": b}, maximum_rule, ("p['b']", (3,))),
        (lambda x: np.sum(_W * np.sort(x)), xs, sort_rule, ("x", (5,))),
    ]


@pytest.mark.parametrize("strategy", ["full", "auto", "sparse", "projected"])
@pytest.mark.parametrize("case", [0, 1], ids=["maximum", "sort"])
def test_float32_ties_excuse_no_error_of_an_untied_element(strategy, case):
    f, x, rule, culprit = _ties_cases()[case]
    assert backcheck.check(f, x, lambda p: rule(p, 1.0), strategy=strategy).status == "pass"
    report = backcheck.check(f, x, lambda p: rule(p, 1.01), strategy=strategy)
    assert report.status == "fail" and _wrong(report) == {culprit}, report
