"""Every bad input raises a typed error that names the culprit; none passes silently."""

import numpy as np
import pytest

import backcheck
from backcheck import (
    GradientStructureError,
    NondeterministicError,
    NonFiniteError,
    NotScalarError,
    ParamsError,
    UserFunctionError,
)


def sq(p):
    return float(np.sum(p["W"] ** 2) + np.sum(p["b"] ** 2))


def dsq(p):
    return {"W": 2 * p["W"], "b": 2 * p["b"]}


@pytest.fixture
def params():
    return {"W": np.arange(6.0).reshape(2, 3), "b": np.array([1.0, -1.0, 0.5])}


def test_loss_that_is_not_a_scalar(params):
    with pytest.raises(NotScalarError, match=r"returned an array of shape \(2, 3\)") as e:
        backcheck.check(lambda p: p["W"] ** 2, params, dsq)
    assert "check_layer" in str(e.value)


def test_nan_in_the_loss(params):
    with np.errstate(divide="ignore", invalid="ignore"), pytest.raises(NonFiniteError, match="original point"):
        backcheck.check(lambda p: np.sum(np.log(p["W"] - 1)), params, dsq)


def test_nan_at_a_perturbed_point_names_the_element():
    # NaN on both sides of x[1] at every step (an isolated point of the domain): no difference exists
    x = np.array([1.0, 0.0])
    with pytest.raises(NonFiniteError, match=r"x\[1\] perturbed by"):
        backcheck.check(lambda x: x[0] + (0.0 if x[1] == 0 else np.nan), x, np.ones_like)


def test_an_element_on_the_edge_of_the_domain_is_differenced_from_its_finite_side():
    # f = x for x >= 0, NaN below: at x[1] = 0 only the right side exists, and its slope is judged
    x = np.array([1.0, 0.0])

    def f(x):
        return np.sum(np.where(x >= 0, x, np.nan))

    right = backcheck.check(f, x, np.ones_like)
    assert right.ok and any("edge of f's domain (x[1])" in n for n in right.notes), right
    wrong = backcheck.check(f, x, lambda x: np.where(x == 0, 0.5, 1.0))
    assert wrong.status == "fail" and [e.name for e in wrong.mismatches] == ["x[1]"], wrong


def test_nan_in_the_gradient_names_leaf_and_element(params):
    def bad(p):
        g = dsq(p)
        g["b"] = g["b"].copy()
        g["b"][2] = np.inf
        return g

    # a non-finite analytic element where the function is finite is a failing element, named
    r = backcheck.check(sq, params, bad)
    assert r.status == "fail"
    assert [e.name for lf in r.leaves for e in lf.worst if e.status == "mismatch"] == ["p['b'][2]"]


def test_gradient_with_a_missing_key(params):
    with pytest.raises(GradientStructureError, match="missing 'b'"):
        backcheck.check(sq, params, lambda p: {"W": 2 * p["W"]})


def test_gradient_with_a_wrong_shape_names_both_shapes(params):
    with pytest.raises(GradientStructureError, match=r"p\['W'\] has shape \(3, 2\), but p\['W'\] has shape \(2, 3\)"):
        backcheck.check(sq, params, lambda p: {"W": 2 * p["W"].T, "b": 2 * p["b"]})


def test_gradient_with_a_wrong_dtype(params):
    with pytest.raises(GradientStructureError, match="dtype float32"):
        backcheck.check(
            sq, params, lambda p: {"W": (2 * p["W"]).astype(np.float32), "b": 2 * p["b"]}, strict_dtype=True
        )
    with pytest.raises(GradientStructureError, match="dtype int64"):
        backcheck.check(sq, params, lambda p: {"W": np.zeros((2, 3), dtype=np.int64), "b": 2 * p["b"]})


def test_gradient_list_of_the_wrong_length():
    with pytest.raises(GradientStructureError, match="length 1.*length 2"):
        backcheck.check(lambda p: float(np.sum(p[0]) + np.sum(p[1])), [np.ones(2), np.ones(3)], lambda p: [np.ones(2)])


def test_integer_and_boolean_params_are_refused_by_name():
    with pytest.raises(ParamsError, match=r"p\['labels'\] has dtype int64"):
        backcheck.check(lambda p: 0.0, {"x": np.ones(2), "labels": np.array([1, 2])}, lambda p: p)
    with pytest.raises(ParamsError, match="is a bool"):
        backcheck.check(lambda p: 0.0, {"flag": True}, lambda p: p)
    with pytest.raises(ParamsError, match="integer 3"):
        backcheck.check(lambda x: x**2, 3, lambda x: 2 * x)


def test_empty_params():
    with pytest.raises(ParamsError, match="no arrays"):
        backcheck.check(lambda p: 0.0, {}, lambda p: p)
    report = backcheck.check(lambda p: 0.0, np.zeros(0), lambda p: p)  # as gradcheck: trivially, and said
    assert report.status == "pass" and any("no elements to check" in n for n in report.notes)


def test_unsupported_leaf_type_gets_a_hint():
    with pytest.raises(ParamsError, match="str") as e:
        backcheck.check(lambda p: 0.0, {"a": "hello"}, lambda p: p)
    assert "Hint:" in str(e.value)


def test_user_function_that_raises_is_chained_and_names_the_element():
    calls = {"n": 0}

    def flaky(x):
        calls["n"] += 1
        if calls["n"] == 6:  # past the 2 baseline evaluations, among the first differences
            raise ZeroDivisionError("boom")
        return float(np.sum(x**2))

    x = np.arange(4.0)
    before = x.copy()
    with pytest.raises(UserFunctionError, match=r"flaky raised ZeroDivisionError: boom\n.*x\[\d\] perturbed") as e:
        backcheck.check(flaky, x, lambda x: 2 * x)
    assert isinstance(e.value.__cause__, ZeroDivisionError)
    assert x.tobytes() == before.tobytes()


def test_gradient_function_that_raises():
    with pytest.raises(UserFunctionError, match="my_grad raised KeyError"):

        def my_grad(x):
            raise KeyError("W")

        backcheck.check(lambda x: float(np.sum(x)), np.ones(2), my_grad)


def test_random_function_stops_with_an_explanation():
    rng = np.random.default_rng(0)

    def dropout_loss(x):
        mask = rng.random(x.shape) > 0.5
        return float(np.sum(x * mask))

    with pytest.raises(NondeterministicError, match="random"):
        backcheck.check(dropout_loss, np.ones(5), lambda x: np.ones(5), random="error")


def test_randomness_that_cannot_be_replayed_stops_with_an_explanation():
    import os

    def truly_random(x):
        # 8 fresh bytes: two calls agree by chance with probability 2**-64 (one byte: 1/256, a flaky test)
        return float(np.sum(x) * (1 + int.from_bytes(os.urandom(8), "little") / 2.0**64 / 1e3))

    with pytest.raises(NondeterministicError, match="random"):
        backcheck.check(truly_random, np.ones(5), lambda x: np.ones(5))


def test_tensors_are_pointed_to_the_framework_frontends():
    class FakeTensor:
        pass

    FakeTensor.__module__ = "torch"
    with pytest.raises(ParamsError, match="backcheck.torch"):
        backcheck.check(lambda p: 0.0, FakeTensor(), lambda p: p)


def test_layer_gradient_count_mismatch():
    def fwd(x, w):
        return x @ w

    def bwd(dout, x, w):
        return (dout @ w.T,)

    with pytest.raises(GradientStructureError, match=r"returned 1 gradient\(s\).*2 input\(s\) \(x, w\)"):
        backcheck.check_layer(fwd, bwd, (np.ones((2, 3)), np.ones((3, 4))))


def test_layer_dout_of_the_wrong_shape():
    with pytest.raises(GradientStructureError, match=r"dout has shape \(3,\).*\(2,\)"):
        backcheck.check_layer(lambda x: 2 * x, lambda d, x: 2 * d, np.ones(2), dout=np.ones(3))


def test_layer_without_float_inputs():
    with pytest.raises(backcheck.BadInputError, match="none of"):
        backcheck.check_layer(lambda i: np.ones(2), lambda d, i: None, np.array([1, 2]))


def test_layer_with_cache_that_does_not_return_a_pair():
    with pytest.raises(backcheck.BadInputError, match=r"must return \(out, cache\)"):
        backcheck.check_layer(lambda x: 2 * x, lambda d, c: 2 * d, np.ones(2), cache=True)


@pytest.mark.parametrize(
    "options, name",
    [
        ({"detect": -1e-3}, "detect"),
        ({"detect": float("nan")}, "detect"),
        ({"detect": "small"}, "detect"),
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 0.0}, "confidence"),
        ({"confidence": True}, "confidence"),
    ],
)
def test_detection_options_are_validated_and_named(options, name):
    x = np.arange(1.0, 5.0)
    with pytest.raises(backcheck.BadInputError, match=name) as e:
        backcheck.check(lambda x: float(np.sum(x**2)), x, lambda x: 2 * x, strategy="auto", **options)
    assert "Hint:" in str(e.value)


@pytest.mark.parametrize(
    "options",
    [
        {"strategy": np.array(["full", "auto"])},
        {"strategy": np.array([])},
        {"strategy": np.array(["full"])},
        {"random": np.array(["auto", "freeze"])},
    ],
)
def test_an_array_for_a_named_choice_is_a_typed_error(options):
    with pytest.raises(backcheck.BadInputError, match=next(iter(options))):
        backcheck.check(lambda x: float(np.sum(x**2)), np.ones(3), lambda x: 2 * x, **options)
