"""Values tied by the dozen or the hundred (integer data: rows of -1/0/1, images of 0s and 1s, ReLU networks with
integer weights and biases, a zero background): a right rule at such ties passes, or is inconclusive with a reason;
a wrong one still fails."""

import numpy as np
import pytest
from tie_rules import pool3, pool3_backward

import backcheck

torch = pytest.importorskip("torch")
bt = pytest.importorskip("backcheck.torch")
F = torch.nn.functional

TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32}


@pytest.mark.parametrize(
    ("shape", "dtype", "seed"),
    [((2, 64), "float64", 0), ((2, 64), "float32", 2), ((1, 256), "float64", 0), ((1, 256), "float32", 1)],
)
def test_torch_sort_of_rows_of_many_ties_passes(shape, dtype, seed):
    # a tie of about 85 values moved a few dozen steps at random lies closer than a step apart somewhere, and an
    # element's own differences at the nearby point crossed its neighbours' (it failed)
    x = torch.tensor(np.random.default_rng(seed).integers(-1, 2, shape), dtype=TORCH_DTYPES[dtype])
    report = bt.check(lambda x: torch.sort(x, -1).values, x)
    assert report.status == "pass", report


def _sort_backward(rule):
    def backward(d, x):
        order = np.argsort(x, -1, kind="stable")
        g = np.zeros_like(x)
        for r in range(x.shape[0]):
            g[r, order[r]] = d[r]
            for value in np.unique(x[r]) if rule != "stable" else ():
                tie = order[r][x[r, order[r]] == value]
                if rule == "reversed":  # another order of the tied elements: a valid subgradient
                    g[r, tie] = g[r, tie][::-1]
                elif rule == "first_takes_tie":  # the tie's whole gradient to its first element: its sum is right
                    g[r, tie[0]], g[r, tie[1:]] = g[r, tie].sum(), 0
                elif rule == "first_doubled":
                    g[r, tie[0]] *= 2
        return g

    return backward


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("rule", "right"), [("stable", True), ("reversed", True), ("first_takes_tie", False), ("first_doubled", False)]
)
def test_a_sort_rule_at_ties_of_forty_is_judged_by_them(dtype, rule, right):
    # (a float32 rule doubling each tie's first gradient was sampled around the point where tied values collided on
    # float32's grid, its own tie rule taken for a gradient around the point)
    x = np.random.default_rng(3).integers(-1, 2, (2, 128)).astype(dtype)
    report = backcheck.check_layer(lambda x: np.sort(x, -1), _sort_backward(rule), (x,))
    assert report.status == ("pass" if right else "fail"), report


@pytest.mark.parametrize(("dtype", "seed", "low"), [("float32", 0, 0), ("float32", 2, -1), ("float64", 0, 0)])
def test_torch_overlapping_max_pool_on_an_integer_image_passes(dtype, seed, low):
    # torch gives each window's first maximum the gradient: an element leading every window it ties in, among a
    # dozen others, is a limit of gradients a random move around the point reaches by chance only
    x = torch.tensor(np.random.default_rng(seed).integers(low, 2, (1, 2, 32, 32)), dtype=TORCH_DTYPES[dtype])
    report = bt.check(lambda x: F.max_pool2d(x, 3, 1), x)
    assert report.status == "pass", report


@pytest.mark.parametrize(
    ("rule", "seed", "dtype", "right"),
    [("first", 0, np.float64, True), ("every", 0, np.float64, False), ("every", 2, np.float64, False)]
    + [("every", 0, np.float32, False), ("half", 0, np.float64, False), ("half", 2, np.float64, False)]
    + [("first_doubled", 0, np.float64, False)],
)
def test_an_overlapping_max_pool_rule_on_a_large_binary_image_is_judged_by_its_ties(rule, seed, dtype, right):
    # a 24x24 image of 0s and 1s: each value's tie holds hundreds of elements, moved whole (a gradient to every
    # tied maximum, or half of it to each, passed while ties of more than 64 were left unmoved)
    x = np.random.default_rng(seed).integers(0, 2, (24, 24)).astype(dtype)
    report = backcheck.check_layer(pool3, pool3_backward(rule), (x,))
    assert report.status == ("pass" if right else "fail"), report


def _mlp2(x, w1, b1, w2, b2):
    return np.maximum(np.maximum(x @ w1 + b1, 0) @ w2 + b2, 0).sum(1)


def _mlp2_backward(slope_at_0=0.0, bump=None):
    def backward(d, x, w1, b1, w2, b2):
        h1 = x @ w1 + b1
        a1 = np.maximum(h1, 0)
        h2 = a1 @ w2 + b2
        dh2 = d[:, None] * ((h2 > 0) + slope_at_0 * (h2 == 0))
        dh1 = (dh2 @ w2.T) * ((h1 > 0) + slope_at_0 * (h1 == 0))
        grads = [dh1 @ w1.T, x.T @ dh1, dh1.sum(0), a1.T @ dh2, dh2.sum(0)]
        if bump is not None:  # one element 0.3 off
            grads[bump[0]].flat[bump[1]] += 0.3
        return tuple(g.astype(x.dtype) for g in grads)

    return backward


def _mlp2_args(seed, dtype):
    rng = np.random.default_rng(seed)
    shapes = (((0, 2), (16, 12)), ((-1, 2), (12, 20)), ((-1, 2), (20,)), ((-1, 2), (20, 10)), ((-1, 2), (10,)))
    return tuple(rng.integers(lo, hi, shape).astype(dtype) for (lo, hi), shape in shapes)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", [2, 7])
def test_a_two_layer_relu_network_on_integer_data_flat_along_an_element_is_not_failed(dtype, seed):
    # f is flat along x[10, 8] (kinks of both signs cancel along it) while relu'(0) = 0 claims -0.37: its rounding
    # over a step 16 times smaller grew 16 times, and was taken for a vertical tangent (it failed)
    args = _mlp2_args(seed, dtype)
    assert backcheck.check_layer(_mlp2, _mlp2_backward(), args).status != "fail"
    for wrong in (_mlp2_backward(2.0), _mlp2_backward(bump=(0, 17)), _mlp2_backward(bump=(1, 5))):
        assert backcheck.check_layer(_mlp2, wrong, args).status == "fail"


class _ReluTwoAtZero(torch.autograd.Function):
    """A ReLU whose backward claims 2 at 0: no subgradient."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * ((x > 0) + 2.0 * (x == 0)).to(g.dtype)


def test_a_float32_cnn_on_a_zero_background_is_not_failed():
    # conv, ReLU, 2x2 max pool, linear, on a 20x20 image of zeros with a blob of values in steps of 0.01: background
    # pixels sit at kinks, and other kinks lie within a float32 step of them; the Richardson table's mismatches are
    # kinks at a sixteenth of the step (it failed)
    g = np.random.default_rng(0)
    image = np.zeros((1, 1, 20, 20))
    image[0, 0, 5:14, 6:13] = g.uniform(0, 1, (9, 7)).round(2)
    w1 = torch.tensor(g.normal(size=(4, 1, 3, 3)), dtype=torch.float32)
    w2 = torch.tensor(g.normal(size=(400, 3)), dtype=torch.float32)
    x = torch.tensor(image, dtype=torch.float32)
    right = bt.check(lambda x, w1: F.max_pool2d(F.relu(F.conv2d(x, w1, padding=1)), 2).flatten(1) @ w2, x, w1)
    assert right.status != "fail", right
    wrong = bt.check(
        lambda x, w1: F.max_pool2d(_ReluTwoAtZero.apply(F.conv2d(x, w1, padding=1)), 2).flatten(1) @ w2, x, w1
    )
    assert wrong.status == "fail", wrong


def _top8(x):
    return -np.sort(-x, -1, kind="stable")[:, :8]


def _top8_backward(doubled):
    def backward(d, x):
        top = np.argsort(-x, -1, kind="stable")[:, :8]
        g = np.zeros_like(x)
        for r in range(x.shape[0]):
            g[r, top[r]] = d[r]
            g[r, top[r, 0]] *= 2 if doubled else 1
        return g

    return backward


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", [0, 1])
def test_a_top_k_rule_doubling_the_lead_of_a_tie_of_twenty_fails(dtype, seed):
    # rows of 64 values of -1/0/1: the top 8 all tie at 1, and the 1s of the array are a tie of about 85
    x = np.random.default_rng(seed).integers(-1, 2, (4, 64)).astype(dtype)
    assert backcheck.check_layer(_top8, _top8_backward(False), (x,)).status == "pass"
    assert backcheck.check_layer(_top8, _top8_backward(True), (x,)).status == "fail"


def _sort_swapping_at_tie_boundaries(d, x):
    """A sort's backward that swaps the gradients of each tie's last element and the next value's first: wrong
    only at ties (at a nearby point where they are broken it is the right rule)."""
    order = np.argsort(x, -1, kind="stable")
    ranked = np.take_along_axis(x, order, -1)
    dd = d.copy()
    for r in range(x.shape[0]):
        starts = np.flatnonzero(np.r_[True, ranked[r, 1:] != ranked[r, :-1]])
        for a, e in zip(starts, np.r_[starts[1:], x.shape[1]], strict=True):
            if e - a >= 2 and e < x.shape[1]:
                dd[r, e - 1], dd[r, e] = dd[r, e], dd[r, e - 1]
    g = np.zeros_like(x)
    np.put_along_axis(g, order, dd, -1)
    return g


def test_a_sort_rule_wrong_at_tie_boundaries_fails_where_its_rows_errors_cancel():
    """Seed 2: the rule's errors over each value's tie cancel between the two rows (the -1 tie +0.52 in one row,
    -0.57 in the other), so the tie moved whole over the array agreed; each row's part of it is told apart."""
    x = np.random.default_rng(2).integers(-1, 2, (2, 512)).astype(np.float64)
    report = backcheck.check_layer(lambda x: np.sort(x, 1), _sort_swapping_at_tie_boundaries, (x,))
    assert report.status == "fail", report


def _sort_rows_swapping_their_first_tied(d, x):
    """A row-wise sort's backward that swaps the gradients of each value's first tied element between the two rows:
    each value's sum over the whole array is unchanged."""
    order = np.argsort(x, -1, kind="stable")
    g = np.zeros_like(x)
    np.put_along_axis(g, order, d, -1)
    for v in np.unique(x):
        a, b = np.flatnonzero(x[0] == v), np.flatnonzero(x[1] == v)
        if a.size > 1 and b.size > 1:
            g[0, a[0]], g[1, b[0]] = g[1, b[0]], g[0, a[0]]
    return g


@pytest.mark.parametrize("seed", [0, 1])
def test_a_sort_rule_mixing_rows_at_ties_fails(seed):
    x = np.random.default_rng(seed).integers(-1, 2, (2, 64)).astype(np.float64)
    report = backcheck.check_layer(lambda x: np.sort(x, 1), _sort_rows_swapping_their_first_tied, (x,))
    assert report.status == "fail", report
