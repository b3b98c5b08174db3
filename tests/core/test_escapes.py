"""Nothing but a typed error escapes an entry point: arguments of a kind it does not take (an integer for
names=, a method name that is no string, a ragged output under the complex step, float8 arrays, a dict as
torch's fn), and exceptions of the user's own code met outside the function's calls (a property of a
layer that raises, a __getattr__ that raises something other than AttributeError)."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError, ParamsError, UserFunctionError

X = np.random.default_rng(0).normal(size=(4, 3))


class Linear:
    def __init__(self) -> None:
        self.W = np.random.default_rng(1).normal(size=(3, 2))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return x @ self.W

    def backward(self, d: np.ndarray) -> np.ndarray:
        self.dW = self.x.T @ d
        return d @ self.W.T


def test_names_of_the_wrong_kind_is_a_typed_error_naming_the_entry() -> None:
    with pytest.raises(BadInputError, match="check_layer could not use its arguments"):
        backcheck.check_layer(np.tanh, lambda d, a: d * (1 - np.tanh(a) ** 2), (X,), names=1)


@pytest.mark.parametrize("method", [{"forward": 3}, {"backward": None}])
def test_a_method_name_that_is_no_string_is_a_typed_error(method: dict) -> None:
    with pytest.raises(BadInputError, match="check_object"):
        backcheck.check_object(Linear(), X, **method)


class GradsPropertyRaises(Linear):
    @property
    def grads(self) -> dict:
        raise RuntimeError("grads property boom")


class GetattrRaises(Linear):
    def __getattr__(self, name: str) -> None:
        raise RuntimeError(f"no {name}")


def test_a_layer_property_that_raises_is_the_users_error() -> None:
    with pytest.raises(UserFunctionError, match="grads property boom"):
        backcheck.check_object(GradsPropertyRaises(), X)


def test_a_getattr_that_raises_is_typed() -> None:
    before = X.copy()
    with pytest.raises(backcheck.errors.BackcheckError):
        backcheck.check_object(GetattrRaises(), X)
    assert np.array_equal(X, before)


def test_a_ragged_output_under_the_complex_step_is_typed() -> None:
    with pytest.raises(BadInputError):
        backcheck.numerical_grad(lambda w: [w, {}], np.array([0.5, 1.0]), method="complex")


def test_float8_arrays_are_typed_errors() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    a = np.array([0.5, -0.25, 1.0], dtype=ml_dtypes.float8_e5m2)
    with pytest.raises(BadInputError):
        backcheck.numerical_grad(lambda w: float(np.sum(w.astype(np.float64) ** 2)), a)
    with pytest.raises(BadInputError):
        backcheck.check_layer(lambda x: x * x, lambda d, x: 2 * d * x, (a,))


@pytest.mark.parametrize("kind", ["float8_e5m2", "float8_e4m3fn", "bfloat16", "float4_e2m1fn"])
def test_every_ml_dtypes_float_is_known_by_name_at_every_entry(kind) -> None:
    # numpy reads float8_e5m2 as a float of kind 'f' (the others as 'V'), and ml_dtypes 0.7 gives it np.finfo:
    # check took it and passed, numerical_grad failed on 'no finite difference', check_layer checked it alone
    ml_dtypes = pytest.importorskip("ml_dtypes")
    dt = np.dtype(getattr(ml_dtypes, kind))
    a = np.array([0.5, -0.25, 1.0], dtype=dt)
    before = a.copy()
    f = lambda w: float(np.sum(w.astype(np.float64) ** 2))  # noqa: E731
    for call in (
        lambda: backcheck.numerical_grad(f, a),
        lambda: backcheck.check(f, {"w": a}, lambda p: {"w": 2 * p["w"].astype(np.float64)}),
        lambda: backcheck.check_layer(lambda w: w.astype(np.float64) ** 2, lambda d, w: 2 * d * w, (a,)),
    ):
        with pytest.raises(ParamsError, match=f"has dtype {kind} \\(ml_dtypes\\)"):
            call()
    # beside a float input, as any such array: its gradient is named unchecked, and the verdict cannot pass
    report = backcheck.check_layer(
        lambda x, w: x * w.astype(np.float64), lambda d, x, w: (d * w.astype(np.float64), d * x), (np.ones(3), a)
    )
    assert report.status == "inconclusive", report
    assert [f.elements for f in report.findings if f.kind == "unchecked gradient"] == [["w"]], report
    assert a.dtype == dt and np.array_equal(a.view(np.uint8), before.view(np.uint8))


@pytest.mark.parametrize("fn", [{}, [1], np.ones(3)])
def test_a_torch_fn_that_is_no_function_is_typed_whatever_the_inputs(fn) -> None:
    torch = pytest.importorskip("torch")
    import backcheck.torch as bt

    for args in (([torch.ones(3)],), (torch.ones(3),)):
        with pytest.raises(BadInputError):
            bt.check(fn, *args)


def test_a_masked_loss_is_a_typed_error_not_zero() -> None:
    x = np.array([1.0, 2.0, 3.0])
    with pytest.raises(backcheck.errors.NonFiniteError, match="masked"):
        backcheck.check(lambda w: np.ma.masked, x, np.zeros_like)
    with pytest.raises(backcheck.errors.NonFiniteError, match="masked"):
        backcheck.check(lambda w: np.ma.masked_less(w, 2.0).sum() * np.ma.masked, x, np.zeros_like)
