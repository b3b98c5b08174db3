"""Verdicts, reports and evaluation counts of check / check_layer on hand-made cases."""

import json

import numpy as np
import pytest

import backcheck
from backcheck import GradientMismatch


def quad(x):
    return float(np.sum(np.sin(x) * x))


def dquad(x):
    return np.cos(x) * x + np.sin(x)


def test_full_check_costs_2n_plus_a_constant_when_correct():
    x = np.linspace(-1, 1, 37)
    r = backcheck.check(quad, x, dquad)
    assert r.ok and r.status == "pass"
    # 2 at the point (determinism), 2 per element; no noise probe: rounding alone clears every element
    assert r.n_evals == 2 * 37 + 2


def test_sparse_check_costs_2k_plus_a_constant():
    x = np.linspace(-1, 1, 1000)
    r = backcheck.check(quad, x, dquad, strategy="sparse", samples=20, seed=3)
    assert r.ok and r.n_evals == 2 * 20 + 2
    assert r.leaves[0].n_checked == 20 and r.leaves[0].n_elements == 1000
    assert any("sparse" in n for n in r.notes)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bug", ["sign", "one_element", "transpose", "scale"])
def test_perturbed_gradients_fail_where_they_are_wrong(dtype, bug):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(6, 6))
    W = rng.normal(size=(6, 6)).astype(dtype)

    def f(W):
        return float(np.sum(np.tanh(A @ W.astype(np.float64))))

    def g(W):
        return (A.T @ (1 - np.tanh(A @ W.astype(np.float64)) ** 2)).astype(dtype)

    def wrong(W):
        d = g(W)
        if bug == "sign":
            return -d
        if bug == "one_element":
            d = d.copy()
            d[2, 3] += 0.05 * np.abs(d).mean()
            return d
        if bug == "transpose":
            return d.T.copy()
        return (d * (1 + 1e-4)).astype(dtype)

    assert backcheck.check(f, W, g, upcast=True).ok
    r = backcheck.check(f, W, wrong, upcast=True)
    assert r.status == "fail", r
    if bug == "one_element":
        wrong_elements = [e.name for e in r.leaves[0].worst if e.status == "mismatch"]
        assert wrong_elements == ["W[2, 3]"]


def test_float64_detects_a_relative_error_of_1e_minus_6():
    x = np.linspace(0.5, 2, 10)
    assert not backcheck.check(quad, x, lambda x: dquad(x) * (1 + 1e-6)).ok


def test_relu_exactly_at_zero_is_a_kink_not_a_failure():
    x = np.array([-1.0, 0.0, 0.0, 2.0, 0.5, 0.0])
    r = backcheck.check_layer(lambda x: np.maximum(x, 0), lambda d, x: d * (x > 0), x)
    assert r.ok, r
    assert r.leaves[0].n_kinks == 3
    assert {e.name for e in r.leaves[0].kinks} == {"x[1]", "x[2]", "x[5]"}
    assert "kink" in str(r)


def test_a_bug_next_to_a_kink_still_fails():
    x = np.array([-1.0, 0.0, 0.0, 2.0, 0.5])

    def wrong(d, x):
        g = d * (x > 0)
        return np.where(x == 0, -d, g)  # at the kink, a slope outside [0, 1]: not a subgradient

    r = backcheck.check_layer(lambda x: np.maximum(x, 0), wrong, x, dout=np.ones(5))
    assert r.status == "fail"
    assert {e.name for e in r.leaves[0].worst if e.status == "mismatch"} == {"x[1]", "x[2]"}


def test_max_with_ties_routed_to_every_element_is_caught_jointly():
    x = np.array([[1.0, 3.0, 3.0, 0.5], [2.0, 2.0, -1.0, 0.0]])

    def fwd(x):
        return x.max(axis=1)

    def routed_to_one(d, x):
        g = np.zeros_like(x)
        g[np.arange(2), x.argmax(axis=1)] = d
        return g

    def routed_to_all(d, x):
        return (x == x.max(axis=1, keepdims=True)) * d[:, None]

    good = backcheck.check_layer(fwd, routed_to_one, x, dout=np.array([1.0, 0.7]))
    assert good.ok and good.leaves[0].n_kinks == 4, good
    bad = backcheck.check_layer(fwd, routed_to_all, x, dout=np.array([1.0, 0.7]))
    assert bad.status == "fail", bad
    assert any("jointly" in n for n in bad.notes)


def test_dead_gradient_is_named():
    x = np.linspace(0.1, 1, 4)
    r = backcheck.check(lambda x: float(np.sum(x**2)), x, lambda x: np.where(x > 0.5, 2 * x, 0.0))
    assert r.status == "fail"
    assert {e.status for e in r.leaves[0].worst if e.analytic == 0} == {"dead"}


def test_user_tolerances_replace_the_error_model():
    x = np.linspace(0.5, 2, 10)
    wrong = lambda x: dquad(x) * (1 + 1e-6)  # noqa: E731
    assert not backcheck.check(quad, x, wrong).ok
    assert backcheck.check(quad, x, wrong, rtol=1e-5).ok
    assert not backcheck.check(quad, x, dquad, atol=1e-15, rtol=0).ok


def test_report_structure_and_json():
    p = {"W1": np.ones((2, 3)), "b1": np.zeros(3)}
    r = backcheck.check(
        lambda p: float(np.sum(p["W1"] ** 2) + np.sum(p["b1"])),
        p,
        lambda p: {"W1": 2 * p["W1"], "b1": np.full(3, 1.5)},
    )
    assert r.status == "fail" and not r.ok and not bool(r)
    assert [lf.name for lf in r.leaves] == ["p['W1']", "p['b1']"]
    b1 = r.leaf("p['b1']")
    assert b1.status == "fail" and b1.n_mismatch == 3
    e = b1.worst[0]
    assert e.index in [(0,), (1,), (2,)] and e.analytic == 1.5 and abs(e.numeric - 1.0) < 1e-8
    assert e.abs_err > e.bound
    assert np.isclose(b1.rel_diff, 0.5 / 2.5)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["schema_version"] == 1 and d["status"] == "fail" and d["leaves"][1]["worst"][0]["status"] == "mismatch"
    assert r.numeric["W1"].shape == (2, 3) and np.allclose(r.numeric["b1"], 1.0)
    text = str(r)
    assert "FAIL" in text and "p['b1'][0]" in text and "analytic" in text


def test_assert_functions_raise_an_assertion_error_with_the_table():
    with pytest.raises(GradientMismatch) as e:
        backcheck.assert_grad(quad, np.ones(3), lambda x: -dquad(x))
    assert isinstance(e.value, AssertionError) and "x[0]" in str(e.value) and e.value.report.status == "fail"
    with pytest.raises(AssertionError):
        backcheck.assert_layer(lambda x: x**2, lambda d, x: d * x, np.ones(3))
    assert backcheck.assert_layer(lambda x: x**2, lambda d, x: 2 * d * x, np.ones(3)).ok


def test_precomputed_gradient_tree_is_accepted():
    x = np.linspace(0, 1, 4)
    assert backcheck.check(quad, x, dquad(x)).ok


def test_cs231n_cache_convention():
    def affine_forward(x, w, b):
        out = x.reshape(x.shape[0], -1) @ w + b
        return out, (x, w, b)

    def affine_backward(dout, cache):
        x, w, b = cache
        dx = (dout @ w.T).reshape(x.shape)
        return dx, x.reshape(x.shape[0], -1).T @ dout, dout.sum(axis=0)

    def affine_backward_bias_bug(dout, cache):
        dx, dw, _ = affine_backward(dout, cache)
        return dx, dw, dout[0]

    rng = np.random.default_rng(0)
    inputs = (rng.normal(size=(2, 3, 2)), rng.normal(size=(6, 4)), rng.normal(size=4))
    r = backcheck.check_layer(affine_forward, affine_backward, inputs, cache=True)
    assert r.ok and [lf.name for lf in r.leaves] == ["x", "w", "b"]
    bad = backcheck.check_layer(affine_forward, affine_backward_bias_bug, inputs, cache=True)
    assert [lf.status for lf in bad.leaves] == ["pass", "pass", "fail"]


def test_layer_with_labels_and_tuple_output():
    def fwd(x, labels):
        shifted = x - x.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return -logp[np.arange(len(labels)), labels].mean(), np.exp(logp)

    def bwd(douts, x, labels):
        dloss, dprobs = douts
        p = fwd(x, labels)[1]
        onehot = np.eye(x.shape[1])[labels]
        dx = dloss * (p - onehot) / len(labels)
        inner = (dprobs * p).sum(axis=1, keepdims=True)
        return dx + p * (dprobs - inner), None

    rng = np.random.default_rng(0)
    r = backcheck.check_layer(fwd, bwd, (rng.normal(size=(4, 5)), np.array([0, 3, 4, 1])))
    assert r.ok, r
    assert [lf.name for lf in r.leaves] == ["x"]


def test_backward_returning_none_for_a_float_input_fails_unless_declared_constant():
    fwd, bwd = (lambda x, m: x * m), (lambda d, x, m: (d * m, None))
    inputs = (np.ones(3), np.ones(3) * 0.5)
    r = backcheck.check_layer(fwd, bwd, inputs)
    assert r.status == "fail"
    assert r.leaf("m").status == "skipped" and "None" in r.leaf("m").note
    assert [f.kind for f in r.findings] == ["missing gradient"] and r.findings[0].elements == ["m"]
    declared = backcheck.check_layer(fwd, bwd, inputs, constant=["m"])
    assert declared.ok, declared
    assert [lf.name for lf in declared.leaves] == ["x"]


def test_a_report_in_which_nothing_was_compared_is_never_pass():
    r = backcheck.check_layer(lambda x: 2 * x, lambda d, x: None, (np.ones(3),))
    assert r.status == "fail" and r.leaf("x").n_checked == 0
    r2 = backcheck.check_layer(lambda x: 2 * x, lambda d, x: (None,), (np.ones(3),), constant=None)
    assert not r2.ok


def test_float32_layer_is_checked_against_float64_numerics():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5)).astype(np.float32)
    w = rng.normal(size=(5, 3)).astype(np.float32)
    fwd = lambda x, w: np.tanh(x @ w)  # noqa: E731

    def bwd(d, x, w):
        dz = d * (1 - np.tanh(x @ w) ** 2)
        return dz @ w.T, x.T @ dz

    r = backcheck.check_layer(fwd, bwd, (x, w))
    assert r.ok and any("float64" in n for n in r.notes)
    r32 = backcheck.check_layer(fwd, bwd, (x, w), upcast=False)
    assert r32.ok and not any("float64" in n for n in r32.notes)
    scaled = backcheck.check_layer(fwd, lambda d, x, w: tuple(g * np.float32(1 + 1e-4) for g in bwd(d, x, w)), (x, w))
    assert scaled.status == "fail"


def test_forward_that_mutates_its_input_is_reported():
    def fwd(x):
        x -= x.mean()  # in place: the caller's array changes
        return x**2

    r = backcheck.check_layer(fwd, lambda d, x: 2 * d * (x - x.mean()), np.array([1.0, 2.0, 4.0]))
    assert r.status == "fail" and r.findings[0].kind == "mutation" and "x" in r.findings[0].message


def test_float32_rounding_in_a_correct_formula_is_told_apart_from_a_bug():
    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    def backward(d, x):
        s = sigmoid(x)
        return d * s * (1 - s)  # in float32, 1 - s loses every digit for a saturated unit

    x = np.array([[16.5, 17.2, 15.1], [16.0, 15.2, 14.9]], dtype=np.float32)  # every unit saturated
    r = backcheck.check_layer(sigmoid, backward, x)
    assert r.ok, r  # every element's float32 value is within the rounding of the terms it is computed from
    assert r.leaves[0].n_mismatch == 0 and r.leaves[0].counts == {"ok": 6}
    wrong = backcheck.check_layer(sigmoid, lambda d, x: -backward(d, x), x)
    assert wrong.status == "fail"


def test_estimates_that_never_settle_are_noisy_not_a_mismatch():
    from backcheck.refinement import refine
    from backcheck.verdict import NOISY, Tolerance

    class Oscillating:
        """A numeric side whose slope estimate alternates between 1 and 3 as the step halves."""

        phi0, scale, noise, noise_scale, out_dtype, out_eps = (
            0.0,
            1.0,
            0.0,
            0.0,
            np.dtype(np.float64),
            float(np.finfo(np.float64).eps),
        )
        local_scale = np.zeros(1)

        def element(self, i, steps):
            s = steps[0]
            slope = 3.0 if round(np.log2(1.0 / s)) % 2 else 1.0
            return np.array([slope * s, -slope * s]), np.array([s, -s])

    status, *_ = refine(Oscillating(), 0, 2.0, 1.0, (1.0, -1.0, 1.0, -1.0), 1e-12, Tolerance())
    assert status == NOISY


@pytest.mark.parametrize("step", [1e10, 1e300])
def test_a_step_beyond_the_scale_of_f_makes_a_right_rule_inconclusive_not_wrong(step):
    # sin differenced over 1e10 aliases to about 0 at every halving and agrees with itself; at the default steps
    # the rule agrees: the verdict belongs to the step asked for
    x = np.linspace(-1, 1, 6)
    f = lambda x: np.sum(np.sin(x))  # noqa: E731
    r = backcheck.check(f, x, np.cos, step=step)
    assert r.status == "inconclusive" and any("beyond the scale" in n for n in r.notes), r
    assert backcheck.check(f, x, lambda x: 1.5 * np.cos(x), step=step).status == "fail"


def test_a_slow_default_check_says_what_auto_would_cost(monkeypatch):
    import backcheck.run

    x = np.linspace(-1.0, 1.0, 12)
    monkeypatch.setattr(backcheck.run, "SLOW_CHECK", 0.0)  # (every check counts as slow here: no clock is read)
    report = backcheck.check(lambda v: float(np.sum(np.sin(v))), x, np.cos)
    assert any("strategy='auto'" in n and "evaluations of about" in n for n in report.notes), report.notes
    chosen = backcheck.check(lambda v: float(np.sum(np.sin(v))), x, np.cos, strategy="full")
    assert not any("strategy='auto' checks" in n for n in chosen.notes), chosen.notes
