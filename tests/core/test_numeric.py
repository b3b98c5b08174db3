"""Numerical derivatives agree with known derivatives within their own error estimates."""

import numpy as np
import pytest

from backcheck import BadInputError, numerical_grad
from backcheck.numeric import default_steps, step_base
from backcheck.tree import Tree

given = pytest.importorskip("hypothesis").given
st = pytest.importorskip("hypothesis.strategies")
arrays = pytest.importorskip("hypothesis.extra.numpy").arrays

FUNCS = {
    "sin": (lambda x: np.sum(np.sin(x)), np.cos),
    "exp": (lambda x: np.sum(np.exp(0.5 * x)), lambda x: 0.5 * np.exp(0.5 * x)),
    "cube": (lambda x: np.sum(x**3 - 2 * x), lambda x: 3 * x**2 - 2),
    "logistic": (lambda x: np.sum(np.log1p(np.exp(x))), lambda x: 1 / (1 + np.exp(-x))),
    "prod": (lambda x: np.prod(1 + 0.1 * x), lambda x: 0.1 * np.prod(1 + 0.1 * x) / (1 + 0.1 * x)),
}

points = arrays(np.float64, st.integers(1, 6), elements=st.floats(-3, 3, allow_nan=False))


@pytest.mark.parametrize("name", sorted(FUNCS))
@given(x=points)
def test_error_estimate_covers_true_error(name, x):
    f, df = FUNCS[name]
    g, err = numerical_grad(f, x, return_error=True)
    assert np.all(np.abs(g - df(x)) <= err), (g - df(x), err)


@pytest.mark.parametrize("name", sorted(FUNCS))
@given(x=points)
def test_richardson_is_more_accurate_than_its_error_estimate(name, x):
    f, df = FUNCS[name]
    g, err = numerical_grad(f, x, method="richardson", return_error=True)
    assert np.all(np.abs(g - df(x)) <= err)
    assert np.all(np.abs(g - df(x)) <= 1e-8 * (1 + np.abs(df(x))))


@pytest.mark.parametrize(
    "method,tol",
    [
        ("central", 1e-8),
        ("forward", 1e-6),
        ("backward", 1e-6),
        ("central4", 1e-10),
        ("central6", 1e-10),
        ("complex", 1e-15),
    ],
)
def test_every_method_converges(method, tol):
    x = np.linspace(-1, 1, 7)
    f, df = FUNCS["sin"]
    g = numerical_grad(f, x, method=method)
    assert np.max(np.abs(g - df(x))) < tol


def test_higher_order_stencils_beat_central_at_a_coarse_step():
    x = np.linspace(-1, 1, 5)
    f, df = FUNCS["exp"]
    errs = {
        m: np.max(np.abs(numerical_grad(f, x, method=m, step=1e-2) - df(x)))
        for m in ("forward", "central", "central4", "central6")
    }
    assert errs["forward"] > errs["central"] > errs["central4"] > errs["central6"]


def test_complex_step_has_no_cancellation_even_at_tiny_steps():
    x = np.array([0.3, 1.7])
    g = numerical_grad(lambda v: np.sum(np.exp(v) * np.sin(v)), x, method="complex")
    assert np.allclose(g, np.exp(x) * (np.sin(x) + np.cos(x)), rtol=1e-15, atol=0)


def test_complex_step_refuses_functions_that_drop_the_imaginary_part():
    with pytest.raises(BadInputError, match="drops the imaginary part"):
        numerical_grad(lambda v: float(np.sum(np.abs(v))), np.array([1.0, 2.0]), method="complex")


def test_trees_are_returned_in_the_users_structure():
    params = {"W": np.ones((2, 3)), "b": [np.zeros(3), 2.0]}
    g = numerical_grad(lambda p: np.sum(p["W"] ** 2) + np.sum(p["b"][0]) + p["b"][1] ** 3, params)
    assert set(g) == {"W", "b"} and g["W"].shape == (2, 3) and g["b"][0].shape == (3,)
    assert np.allclose(g["W"], 2.0) and np.allclose(g["b"][0], 1.0) and np.isclose(g["b"][1], 12.0)


def test_float32_inputs_are_differenced_with_actual_representable_steps():
    x = np.array([0.1, 1.0, 3.3], dtype=np.float32)
    g = numerical_grad(lambda v: np.sum(v.astype(np.float64) ** 2), x)
    # the step actually taken in float32 is used, so the estimate is exact for a quadratic in float64
    assert np.allclose(g, 2 * x.astype(np.float64), rtol=1e-9)


def test_steps_follow_dtype_and_magnitude():
    t = Tree({"a": np.array([0.0, 10.0]), "b": np.array([1.0], dtype=np.float32)})
    h = default_steps(t)
    assert np.isclose(h[0], step_base(np.float64)) and np.isclose(h[1], 10 * step_base(np.float64))
    assert np.isclose(h[2], step_base(np.float32))
    assert 4e-3 < step_base(np.float32) < 6e-3 and 5e-6 < step_base(np.float64) < 7e-6
    assert np.all(default_steps(t, 1e-3) == 1e-3)
    with pytest.raises(BadInputError, match="step="):
        default_steps(t, -1.0)


def test_closure_style_functions_see_in_place_perturbations():
    W = np.array([[1.0, 2.0], [3.0, 4.0]])
    before = W.copy()
    g = numerical_grad(lambda _: np.sum(W**2), W)
    assert np.allclose(g, 2 * W)
    assert W.tobytes() == before.tobytes()


def test_unknown_method_is_named():
    with pytest.raises(BadInputError, match="unknown method='simpson'"):
        numerical_grad(lambda x: x**2, 1.0, method="simpson")
