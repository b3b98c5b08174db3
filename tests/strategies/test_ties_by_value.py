"""Elements tied in value (a median or a sort of equal values): a correct backward routes the gradient to one of
the tied elements (a valid subgradient), which the one-sided slopes along one element cannot judge (the median of
three equal values does not move with one of them alone); moved with every element of their value, the gradients
must sum to the change, so a gradient routed to every tied element still fails."""

import numpy as np
import pytest
from tie_rules import pool3, pool3_backward

import backcheck

torch = pytest.importorskip("torch")
bt = pytest.importorskip("backcheck.torch")

# rows with a median tied 3 ways, tied 3 ways away from the median, and tied in pairs
X = np.array([[0.0, 1.0, 1.0, 1.0, 2.0], [3.0, 2.0, 2.0, 5.0, 2.0], [4.0, 1.0, 1.0, 0.0, 9.0]])


def median(x):
    return np.sort(x, -1)[:, x.shape[1] // 2]


def median_backward(dout, x, bug=None):
    k, rows = x.shape[1] // 2, np.arange(x.shape[0])
    if bug == "every_tie":  # the gradient to every element equal to the median
        return (x == np.sort(x, -1)[:, k : k + 1]) * dout[:, None]
    g = np.zeros_like(x)
    g[rows, np.argsort(x, -1, kind="stable")[:, k]] = dout
    return 2.0 * g if bug == "double" else g


def test_a_median_routed_to_one_of_three_tied_elements_passes():
    report = backcheck.check_layer(median, median_backward, X)
    assert report.status == "pass", report
    assert any("tie in value with other elements" in n for n in report.notes), report.notes


@pytest.mark.parametrize("bug", ["every_tie", "double"])
def test_a_wrong_median_backward_still_fails(bug):
    report = backcheck.check_layer(median, lambda d, x: median_backward(d, x, bug), X)
    assert report.status == "fail", report


def test_a_median_routed_to_every_tied_element_fails_at_the_tie():
    report = backcheck.check_layer(median, lambda d, x: median_backward(d, x, "every_tie"), X)
    wrong = {e.index for e in report.mismatches}
    # (every row's median is a tie routed to each of its elements: row 2's pair of 1s as well)
    assert wrong and wrong <= {(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 4), (2, 1), (2, 2)}, wrong


@pytest.mark.parametrize("seed", range(4))
def test_torch_sort_and_median_of_equal_values_pass(seed):
    x = torch.tensor([[1.0, 1.0, 1.0], [2.0, 1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    assert bt.check(lambda x: torch.sort(x, -1).values, x, seed=seed).status == "pass"
    y = torch.tensor([[0.0, 1.0, 1.0, 1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    assert bt.check(lambda y: torch.median(y, -1).values, y, seed=seed).status == "pass"


def test_a_smooth_wrong_gradient_at_tied_values_is_not_excused():
    x = np.array([[1.0, 1.0, 2.0], [2.0, 3.0, 3.0]])  # integer data: values tie everywhere
    report = backcheck.check_layer(lambda x: x**3, lambda d, x: d * 3 * x**2 * 1.01, x)
    assert report.status == "fail" and report.leaves[0].n_mismatch == x.size, report


def test_a_wrong_rule_at_values_that_repeat_is_not_excused_as_a_tie():
    # float32 data rounded to 2 decimals: values repeat everywhere, but tanh moves with each element alone (its
    # slope is no flat tie's), so a rule 1.5x off fails
    x = np.round(np.random.default_rng(400).normal(size=(300, 300)), 2).astype(np.float32)
    report = backcheck.check_layer(
        lambda x: np.tanh(x.astype(np.float32)),
        lambda d, x: (1.5 * d * (1 - np.tanh(x.astype(np.float64)) ** 2)).astype(x.dtype),
        (x,),
    )
    assert report.status == "fail", report
    assert report.leaves[0].n_kinks == 0, report


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_median_split_against_its_tie_fails_in_float32_too(dtype):
    # (2g, -g) between two of three tied elements sums to g but is no subgradient; the gradients around the point
    # are sampled where the tie is broken as the backward reads the values (float32's grid), not at the tie itself
    def split(d, x):
        k, g = x.shape[1] // 2, np.zeros_like(x)
        for r in range(x.shape[0]):
            t = np.flatnonzero(x[r] == np.sort(x[r])[k])
            g[r, t[0]] = d[r] if len(t) == 1 else 2 * d[r]
            if len(t) > 1:
                g[r, t[1]] = -d[r]
        return g

    report = backcheck.check_layer(median, split, X.astype(dtype))
    assert report.status == "fail", report


def test_a_float32_max_pool_split_against_its_tie_fails():
    def pool(x):
        n, c, h, w = x.shape
        return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))

    def split(dout, x):  # the tied window's gradient as (1 + 1.5, -1.5) over its first two tied elements
        n, c, h, w = x.shape
        xr = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
        top = xr == xr.max(-1, keepdims=True)
        g = np.zeros_like(xr)
        np.put_along_axis(g, np.argmax(xr, -1)[..., None], dout[..., None], -1)
        for i in np.ndindex(*xr.shape[:-1]):
            t = np.flatnonzero(top[i])
            if len(t) > 1:
                g[i][t[0]] -= 1.5 * dout[i]
                g[i][t[1]] += 1.5 * dout[i]
        return g.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h, w).astype(x.dtype)

    x = np.random.default_rng(1).integers(0, 3, size=(2, 2, 4, 4)).astype(np.float32)
    assert backcheck.check_layer(pool, split, x).status == "fail"


@pytest.mark.parametrize("seed", range(4))
def test_a_float32_relu_network_on_integer_data_passes(seed):
    # x and W1 hold small integers: dozens of elements share each value, unrelated to the ReLUs' kinks; only an
    # element's own tie keeps a nearby point from being sampled
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.integers(-2, 3, size=(6, 5)), dtype=torch.float32, requires_grad=True)
    w1 = torch.tensor(rng.integers(-2, 3, size=(5, 8)), dtype=torch.float32, requires_grad=True)
    w2 = torch.tensor(rng.normal(size=(8, 3)), dtype=torch.float32, requires_grad=True)
    report = bt.check(lambda x, w1, w2: torch.relu(x @ w1) @ w2, x, w1, w2)
    assert report.status == "pass", report


def _torch_median(kind):
    class Median(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.median(1).values

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            m = x.median(1, keepdim=True)
            if kind == "split":  # g shared equally by the tied elements: a valid subgradient
                eq = (x == m.values).to(x.dtype)
                return eq / eq.sum(1, keepdim=True) * g[:, None]
            out = torch.zeros_like(x).scatter_(1, m.indices, g[:, None])
            return -out if kind == "negated" else out

    return Median


@pytest.mark.parametrize(("kind", "right"), [("index", True), ("split", True), ("negated", False)])
def test_a_float32_median_over_rows_of_ties_is_judged_by_its_ties(kind, right):
    # rows of 31 small integers: every median is a tie of about ten; a move of a few units in the last place breaks
    # it, and the gradient jumps to another element: no rounding to excuse a wrong rule by
    x = torch.tensor(np.random.default_rng(35).integers(0, 3, size=(4, 31)), dtype=torch.float32)
    report = bt.check_function(_torch_median(kind), x)
    assert (report.status in ("pass", "inconclusive")) if right else (report.status == "fail"), report


@pytest.mark.parametrize("op", ["pool3s2p1", "relu_conv"])
def test_torch_ops_on_integer_images_pass(op):
    # many elements hold -1, 0 or 1 by chance: points where two of them collide again are sampled as any other
    f = {
        "pool3s2p1": lambda x: torch.nn.functional.max_pool2d(x, 3, stride=2, padding=1),
        "relu_conv": lambda x: torch.relu(
            torch.nn.functional.conv2d(x, torch.tensor([[[[1.0, -1.0], [-1.0, 1.0]]]], dtype=x.dtype))
        ),
    }[op]
    for seed in range(6):
        x = torch.tensor(np.random.default_rng(seed).integers(-1, 2, (1, 1, 6, 6)), dtype=torch.float32)
        report = bt.check(f, x)
        assert report.status in ("pass", "inconclusive"), f"seed {seed}:\n{report}"


def top3(x):
    return -np.sort(-x, kind="stable")[:3]


def top3_backward(rule):
    def backward(dout, x):
        idx = np.argsort(-x, kind="stable")[:3]
        g = np.zeros_like(x)
        g[idx] = dout
        if rule == "every_tie":  # the last output's gradient to every element of its value
            g[x == x[idx[-1]]] = dout[-1]
        elif rule == "first_doubled":  # wrong wherever an element leads: gradients around the tie take it too
            g[idx[0]] *= 2
        elif rule == "tie_reordered":  # another order of the tied elements: a valid subgradient at the tie
            tied = idx[x[idx] == x[idx[0]]]
            g[tied] = dout[: tied.size][::-1]
        return g

    return backward


TOPK_POINTS = [np.array([5.0, 1, 3, 3, 3, 0]), np.array([4.0, 4, 4, 4, 1]), np.array([2.0, 7, 2, 7, 7])]


@pytest.mark.parametrize("x", TOPK_POINTS, ids=["boundary", "four", "all_top"])
@pytest.mark.parametrize("rule", ["every_tie", "first_doubled"])
def test_a_top_k_rule_wrong_at_its_tie_fails(x, rule):
    # (the elements outside their one-sided slopes were excused one by one by the gradients around the point: the
    # backward pass's own, which a rule wrong where an element leads gives; their ties now move as a whole)
    report = backcheck.check_layer(top3, top3_backward(rule), (x,))
    assert report.status == "fail", report


@pytest.mark.parametrize("x", TOPK_POINTS, ids=["boundary", "four", "all_top"])
@pytest.mark.parametrize("rule", ["right", "tie_reordered"])
def test_a_top_k_rule_right_at_its_tie_passes(x, rule):
    report = backcheck.check_layer(top3, top3_backward(rule), (x,))
    assert report.status == "pass", report


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_an_overlapping_max_pool_routed_to_every_tied_maximum_fails(seed):
    # (3x3 windows at stride 1 on an image of -1/0/1: tied maxima have unequal jumps, no jump-equal group formed,
    # and each claim was its own forward slope; the image's ties by value, moved whole, show the sum)
    rng = np.random.default_rng(seed)
    x = rng.integers(-1, 2, size=(6, 6)).astype(float)
    assert backcheck.check_layer(pool3, pool3_backward("first"), (x,)).status == "pass"
    assert backcheck.check_layer(pool3, pool3_backward("every"), (x,)).status == "fail"
    # half the gradient to each tied maximum (ties of 3 or more sum beyond it): its elements pass as hidden kinks,
    # moved with their ties too
    assert backcheck.check_layer(pool3, pool3_backward("half"), (x,)).status == "fail"


def _relu_net(x, w1, w2):
    return np.maximum(x @ w1, 0) @ w2


def _relu_net_backward(d, x, w1, w2):
    h = x @ w1
    dh = (d @ w2.T) * (h > 0)
    return dh @ w1.T, x.T @ dh, np.maximum(h, 0).T @ d


@pytest.mark.parametrize("seed", [20, 26, 27])
def test_a_relu_network_on_integer_data_whose_kinks_cancel_passes(seed):
    # kinks of both signs cancelling along one element's axis, or along a tie group's direction, leave f
    # differentiable there; relu'(0) = 0 is a valid subgradient whose value is not that derivative (torch's own
    # autograd failed so); checked right at a nearby point and among the gradients around it
    rng = np.random.default_rng(seed)
    args = (
        rng.integers(-1, 2, (5, 4)).astype(float),
        rng.integers(-1, 2, (4, 6)).astype(float),
        rng.integers(-2, 3, (6, 2)).astype(float),
    )
    assert backcheck.check_layer(_relu_net, _relu_net_backward, args).status == "pass"
    doubled = backcheck.check_layer(_relu_net, lambda d, *a: tuple(2 * g for g in _relu_net_backward(d, *a)), args)
    assert doubled.status == "fail"


def _mlp2(x, w1, b1, w2, b2):
    return np.maximum(np.maximum(x @ w1 + b1, 0) @ w2 + b2, 0).sum(1)


def _mlp2_backward(d, x, w1, b1, w2, b2):
    h1 = x @ w1 + b1
    a1 = np.maximum(h1, 0)
    dh2 = d[:, None] * (a1 @ w2 + b2 > 0)
    dh1 = (dh2 @ w2.T) * (h1 > 0)
    return dh1 @ w1.T, x.T @ dh1, dh1.sum(0), a1.T @ dh2, dh2.sum(0)


@pytest.mark.parametrize("seed", [0, 4, 5, 6])
def test_a_two_layer_relu_network_with_integer_biases_is_never_failed(seed):
    # integer data, weights and biases put hundreds of units at 0: many elements' claims (relu'(0) = 0) differ from
    # f's derivative along their own axis where kinks of both signs cancel; every one of them failed
    rng = np.random.default_rng(seed)
    shapes = (((0, 2), (16, 12)), ((-1, 2), (12, 20)), ((-1, 2), (20,)), ((-1, 2), (20, 10)), ((-1, 2), (10,)))
    args = tuple(rng.integers(lo, hi, shape).astype(float) for (lo, hi), shape in shapes)
    assert backcheck.check_layer(_mlp2, _mlp2_backward, args).status != "fail"
    doubled = backcheck.check_layer(_mlp2, lambda d, *a: tuple(2 * g for g in _mlp2_backward(d, *a)), args)
    assert doubled.status == "fail"


def test_the_auto_tie_screen_takes_kinks_of_both_signs_it_crosses_for_valid():
    # torch's own max_pool2d(relu(conv2d)) on a 1x4x48x48 image of -1/0/1 ('auto': 9,216 elements): moving every
    # value's elements together crosses ReLU kinks of both signs; the claim lies among the gradients around the
    # point there (it failed the right gradient); a pool routed to every tied maximum still fails
    F = torch.nn.functional
    w = torch.tensor(np.random.default_rng(5).integers(-1, 2, (4, 4, 3, 3)), dtype=torch.float64)
    x = torch.tensor(np.random.default_rng(0).integers(-1, 2, (1, 4, 48, 48)), dtype=torch.float64)
    report = bt.check(lambda x: F.max_pool2d(F.relu(F.conv2d(x, w, padding=1)), 2), x)
    assert report.status != "fail", report
