"""A float64 backward's own rounding (unit-sized terms that cancel) told from a wrong formula by a run of the same
backward pass in long double (backcheck.extended)."""

import numpy as np
import pytest

import backcheck
from backcheck.extended import WIDER

#: the tests of the long double run (where long double is float64 itself, the rounding is measured instead)
long_double = pytest.mark.skipif(not WIDER, reason="long double is float64 itself on this platform")

N = 8
LOGITS = np.random.default_rng(0).normal(size=N) * 3 + 25  # confident: sigmoid within 1e-8 of 1


def bce(x):
    return float(np.mean(np.logaddexp(0, -x)))  # labels of 1, computed stably


def bce_grad(x, bug=None):
    s = 1 / (1 + np.exp(-x))
    g = (s - 1.0) / x.size  # exact formula; s - 1 keeps only the float64 rounding of s, up to 1e-5 of g
    if bug == "element":
        g[3] *= 1.001
    elif bug == "sign":
        g[5] = -g[5]
    elif bug == "float64-only":
        g = g * (1 + 1e-3 * (g.dtype == np.float64))  # another computation for float64 alone
    return g


@long_double
def test_a_saturated_sigmoid_backward_passes_with_its_rounding_measured():
    x = LOGITS.copy()
    r = backcheck.check(bce, x, bce_grad)
    assert r.status == "pass", r
    assert any("long double" in n for n in r.notes), r.notes
    assert np.array_equal(x, LOGITS)
    # the bound held is the element's rounding, far below its size: an error that matters would have failed
    leaf = r.leaf("x")
    assert leaf.max_abs_err < 1e-4 * np.abs(bce_grad(LOGITS)).max()


@long_double
@pytest.mark.parametrize("bug, where", [("element", "x[3]"), ("sign", "x[5]"), ("float64-only", None)])
def test_a_wrong_formula_still_fails_beside_the_rounding(bug, where):
    r = backcheck.check(bce, LOGITS.copy(), lambda x: bce_grad(x, bug))
    assert r.status == "fail", r
    wrong = [e.name for e in r.leaf("x").worst if e.status == "mismatch"]
    if where is not None:
        assert wrong == [where], r


def test_a_backward_that_refuses_long_double_has_its_rounding_measured_instead():
    def grad(x):
        if x.dtype == np.longdouble:
            raise TypeError("no long double here")
        return bce_grad(x)

    x = LOGITS.copy()
    r = backcheck.check(bce, x, grad)
    assert r.status == "pass", r
    assert not any("long double" in n for n in r.notes)
    assert any("measured along a line" in n for n in r.notes)
    assert np.array_equal(x, LOGITS)
    wrong = backcheck.check(bce, x, lambda x: grad(x) * np.where(np.arange(x.size) == 2, 1.001, 1.0))
    assert [e.name for e in wrong.leaf("x").worst if e.status == "mismatch"] == ["x[2]"]


@long_double
def test_the_long_double_run_is_made_only_where_elements_mismatch():
    calls = []

    def grad(x):
        calls.append(x.dtype)
        return np.cos(x)

    assert backcheck.check(lambda x: float(np.sum(np.sin(x))), np.linspace(0.1, 2, 7), grad).ok
    assert np.dtype(np.longdouble) not in calls
    calls.clear()
    assert backcheck.check(bce, LOGITS.copy(), lambda x: (calls.append(x.dtype), bce_grad(x))[1]).ok
    assert calls.count(np.dtype(np.longdouble)) == 1


def bce_forward(x, y):
    return np.mean(np.logaddexp(0, -x) * y + np.logaddexp(0, x) * (1 - y)), (x, y)


def bce_backward(dout, cache, bug=False):
    x, y = cache
    dx = dout * (1 / (1 + np.exp(-x)) - y) / x.size
    if bug:
        dx[1, 2] *= 1.001
    return dx, None


@long_double
def test_a_layer_backward_at_confident_logits_passes_and_a_wrong_element_fails():
    x, y = LOGITS.reshape(2, 4).copy(), np.ones((2, 4))
    r = backcheck.check_layer(bce_forward, bce_backward, (x, y), cache=True, wrt=["x"])
    assert r.status == "pass", r
    assert any("long double" in n for n in r.notes)
    bad = backcheck.check_layer(bce_forward, lambda d, c: bce_backward(d, c, True), (x, y), cache=True, wrt=["x"])
    assert bad.status == "fail"
    assert [e.name for e in bad.leaf("x").worst if e.status == "mismatch"] == ["x[1, 2]"]
    assert np.array_equal(x, LOGITS.reshape(2, 4))


def _zoo_case(name, bug, dtype, shift=0.0, scale=1.0, seed=0):
    from backcheck import zoo

    layer = zoo.get(name)
    point = layer.make_inputs(np.random.default_rng(seed), dtype)
    point["x"] = (point["x"] * scale + shift).astype(dtype)
    backward = {b.name: b for b in layer.bugs}[bug].backward
    return backcheck.check_layer(layer.forward, backward, tuple(point.values()))


@pytest.mark.parametrize(
    "name, bug, shift, scale",
    [
        ("softmax", "scale_1e-5", 1e3, 1.0),
        ("groupnorm", "one_wrong_element", 1e4, 0.3),
        ("softmax_cross_entropy", "scale_1e-5", 1e4, 1.0),
    ],
)
def test_the_measured_rounding_never_overrules_a_float32_gradients_float64_run(name, bug, shift, scale):
    r = _zoo_case(name, bug, np.float32, shift=shift, scale=scale)
    assert r.status == "fail", r
    assert not any("measured along a line" in n for n in r.notes)


def test_an_elementwise_float32_kernels_bug_in_its_tail_still_fails():
    r = _zoo_case("gelu_f32", "constant_rounded_1e-3", np.float64, scale=10.0)
    assert r.status == "fail", r


def test_a_gradient_that_moves_by_whole_quanta_along_the_line_has_its_rounding_measured():
    """torch's BCE at a logit of 24 and label 1: sigmoid moves in units of 2**-52, eight of them per step of the
    line, so the backward's values lie exactly on a line there (no residual); two calls at fractions of a step
    fall off it by part of a unit, which is the rounding. A batch of 10 keeps them off every power-of-two grid."""
    torch = pytest.importorskip("torch")
    bt = pytest.importorskip("backcheck.torch")
    rng = np.random.default_rng(0)
    z = (25.0 + rng.standard_normal(10)) * rng.choice([-1.0, 1.0], 10)
    y = torch.tensor((z > 0).astype(np.float64))
    r = bt.check(
        lambda z: torch.nn.functional.binary_cross_entropy_with_logits(z, y), torch.tensor(z, requires_grad=True)
    )
    assert r.status != "fail", r
    assert any("measured along a line" in n for n in r.notes), r.notes
