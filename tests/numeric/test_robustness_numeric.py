"""numerical_grad's contract at its edges: one-sided stencils without extrapolation estimate their error (no
ZeroDivisionError), a step far above the function's scale gets an error estimate that covers the truth (with a
NumericWarning saying why), and junk arguments are typed errors naming them."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError, NumericWarning


def _sin(x):
    return np.sum(np.sin(x))


@pytest.mark.parametrize("method", ["forward", "backward", "central", "central4"])
@pytest.mark.parametrize("n", [1, 2, 5])
def test_every_stencil_estimates_its_error_without_extrapolation(method, n):
    x = np.linspace(-1.0, 2.0, n)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g, err = backcheck.numerical_grad(_sin, x, method=method, return_error=True, extrapolate=False)
    assert np.all(np.isfinite(err)) and np.all(err > 0)
    assert np.all(np.abs(g - np.cos(x)) <= err)


@pytest.mark.parametrize("extrapolate", [True, False])
@pytest.mark.parametrize("step", [1e3, 1e10, 1e300])
def test_an_absurd_step_gets_an_error_estimate_that_covers_the_truth(step, extrapolate):
    x = np.linspace(-1.0, 1.0, 6)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        g, err = backcheck.numerical_grad(_sin, x, step=step, return_error=True, extrapolate=extrapolate)
    truth = np.abs(g - np.cos(x))
    assert np.all(truth <= err), (truth, err)
    assert not [w for w in seen if not issubclass(w.category, NumericWarning)]
    if np.max(truth) > 1e-3:  # the estimate itself is off: the user is told which step, and why
        assert any("far above the scale" in str(w.message) and "step=" in str(w.message) for w in seen)


def test_a_large_step_on_a_function_of_that_scale_keeps_a_sharp_estimate_and_no_warning():
    x = np.linspace(-1.0, 1.0, 4)
    scale = 1e6  # sin(x / 1e6) is smooth on steps of 1e5

    def f(x):
        return np.sum(np.sin(x / scale))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g, err = backcheck.numerical_grad(f, x, step=1e5, return_error=True)
    exact = np.cos(x / scale) / scale
    eps = np.finfo(np.float64).eps
    assert np.all(np.abs(g - exact) <= err)
    assert np.all(err <= 1e4 * eps * np.abs(exact))


@pytest.mark.parametrize("f", [3, None, "np.sin", np.ones(3)])
def test_a_function_that_is_not_callable_is_a_typed_error_naming_f(f):
    with pytest.raises(BadInputError, match=r"^f is .*not a function[\s\S]*Hint:"):
        backcheck.numerical_grad(f, np.ones(3))
    with pytest.raises(BadInputError, match=r"^f is "):
        backcheck.numerical_grad(f, np.ones(3), method="complex")


@pytest.mark.parametrize("name", ["return_error", "extrapolate"])
@pytest.mark.parametrize("value", ["yes", 1, None, [True]])
def test_flags_that_are_not_booleans_are_a_typed_error_naming_them(name, value):
    with pytest.raises(BadInputError, match=f"^{name}=") as info:
        backcheck.numerical_grad(_sin, np.ones(3), **{name: value})
    assert "Hint:" in str(info.value)


@pytest.mark.parametrize("method", [[1, 2], {"a": 1}, np.array(["central"]), 3, "centre"])
def test_a_method_that_is_not_one_of_the_names_is_a_typed_error(method):
    with pytest.raises(BadInputError, match=r"^unknown method=[\s\S]*Hint: use one of"):
        backcheck.numerical_grad(_sin, np.ones(3), method=method)


@pytest.mark.parametrize("step", ["abc", [1e-20, 1e-20], object(), np.inf, -1e-20, 0.0, np.nan])
def test_a_complex_step_that_is_not_one_finite_positive_number_is_a_typed_error(step):
    with pytest.raises(BadInputError, match=r"^step=.*method='complex'[\s\S]*Hint:"):
        backcheck.numerical_grad(_sin, np.ones(3), method="complex", step=step)


def test_a_function_standing_still_at_float64s_edge_warns_only_its_own_warning():
    # every table entry NaN for a constant 1e308: numpy's 'All-NaN slice' warning stays inside
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", backcheck.NumericWarning)
        g = backcheck.numerical_grad(lambda x: 1e308, np.ones(2))
    assert np.array_equal(g, np.zeros(2))
