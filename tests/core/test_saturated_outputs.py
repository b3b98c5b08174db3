"""Functions whose value saturates or cancels to exactly 0 (a sum of tanh at +-1, a BCE's -z + z): what f cannot
show is inconclusive, not a failure, and a pass states the bound f could resolve; a bug of visible size beside a
confident softmax's rows still fails."""

import numpy as np

import backcheck

Z = np.array([[25.3, -24.7, 21.0], [26.1, -25.9, -20.5]])  # tanh is exactly +-1, and their sum exactly 0


def test_the_exact_derivative_of_a_saturated_tanh_is_inconclusive_not_locally_constant():
    r = backcheck.check(lambda z: float(np.sum(np.tanh(z))), Z.copy(), lambda z: 1 / np.cosh(z) ** 2)
    assert r.status == "inconclusive", r
    assert not [f for f in r.findings if f.kind == "locally constant"]


def test_a_zero_rule_where_f_stands_at_zero_is_held_to_what_f_resolves():
    r = backcheck.check(lambda z: float(np.sum(np.tanh(z))), Z.copy(), lambda z: 1 - np.tanh(z) ** 2)
    # f moves at wider steps, so it is not 0 everywhere: a claimed 0 is held to one unit of rounding of terms
    # of size 1 over the step (not to the rounding of 0, 1e-304), which cannot vouch for slopes of 1e-21
    assert r.status == "inconclusive", r
    assert min(e.bound for e in r.leaf("z").worst) >= np.finfo(np.float64).eps / (2 * 26 * 1e-3)


def test_a_function_that_is_zero_everywhere_keeps_its_bound_of_zero():
    r = backcheck.check(lambda z: float(np.sum(z * 0.0)), Z.copy(), lambda z: 0.0 * z)
    assert r.ok and r.leaf("z").floor < 1e-290, r


def test_a_rule_claiming_a_change_f_would_show_still_fails():
    x = np.array([3.2, -1.7, 1.4])  # round(x) sums to exactly 0 here, like the tanh above
    r = backcheck.check(lambda x: float(np.sum(np.round(x))), x, lambda x: np.ones_like(x))
    assert r.status == "fail", r


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def softmax_backward(dout, z):
    p = softmax(z)
    return p * (dout - (dout * p).sum(1, keepdims=True))


def test_a_wrong_softmax_backward_of_visible_size_still_fails_beside_confident_rows():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, 5))
    z[:2, 0] += 30  # two confident rows, two ordinary ones
    dout = np.random.default_rng(1).normal(size=(4, 5))

    def wrong(dout, z):
        g = softmax_backward(dout, z)
        g[3, 2] *= 1.01  # an ordinary row's element
        return g

    r = backcheck.check_layer(softmax, wrong, (z,), dout=dout)
    assert r.status == "fail"
    assert [e.name for e in r.leaf("z").worst if e.status == "mismatch"] == ["z[3, 2]"]


def test_an_inconclusive_zero_gradient_states_its_bound_not_a_ratio_to_zero():
    z = np.array([[30.3, -34.7, 31.0], [36.1, -35.9, -30.5]])
    r = backcheck.check(lambda z: float(np.sum(np.tanh(z)) - np.sum(np.sign(z))), z, lambda z: 0 * z)
    assert r.status == "inconclusive", r
    (said,) = [line for line in str(r).splitlines() if "agree only within" in line]
    assert "in a gradient that is 0 both ways here" in said and "of the gradient's size" not in said
