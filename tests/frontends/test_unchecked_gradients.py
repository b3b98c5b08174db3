"""Inputs of a kind check_layer does not perturb (a list of floats, a complex array, a dict of arrays, bfloat16
from ml_dtypes) for which backward returns a gradient: that gradient is never compared, so the check must not
pass; it is inconclusive with an 'unchecked gradient' finding naming the input, and a wrong gradient elsewhere
still fails."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.report import FAILING_FINDINGS

X = np.random.default_rng(0).normal(size=(4, 3))
S = np.array([2.0, 3.0, 4.0])
CASES = {
    "list of floats": (S.tolist(), np.asarray, lambda g: g),
    "complex array": (S + 0j, lambda s: s.real, lambda g: g + 0j),
}
#: A dict of float arrays that backward claims a gradient for is differentiated, entry by entry (a cell's
#: parameters, tests/frontends/test_layer_dict_parameters.py): its wrong gradient fails.
DICT = ({"s": S}, lambda p: p["s"], lambda g: {"s": g})


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_gradient_for_an_input_passed_through_is_not_vouched_for(case):
    s, get, wrap = CASES[case]

    def forward(x, s):
        return x * get(s)

    def backward(d, x, s):
        return d * get(s), wrap(10 * np.sum(d * x, 0))  # s's gradient 10x wrong

    report = backcheck.check_layer(forward, backward, (X, s))
    assert report.status == "inconclusive", report
    found = [f for f in report.findings if f.kind == "unchecked gradient"]
    assert found and found[0].elements == ["s"] and "unchecked gradient" not in FAILING_FINDINGS
    assert "np.asarray(s, dtype=np.float64)" in found[0].message


def test_a_dict_of_arrays_with_a_gradient_is_checked():
    s, get, wrap = DICT
    report = backcheck.check_layer(
        lambda x, s: x * get(s), lambda d, x, s: (d * get(s), wrap(10 * np.sum(d * x, 0))), (X, s)
    )
    assert [lf.name for lf in report.leaves if lf.status == "fail"] == ["s['s']"], report


def test_a_wrong_gradient_beside_it_still_fails():
    s, get, wrap = DICT
    report = backcheck.check_layer(lambda x, s: x * get(s), lambda d, x, s: (2 * d * get(s), wrap(d.sum(0))), (X, s))
    assert report.status == "fail", report


def test_bfloat16_from_ml_dtypes_is_named():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = X.astype(ml_dtypes.bfloat16)
    w = np.random.default_rng(1).normal(size=(3, 2))

    def forward(x, w):
        return x.astype(np.float64) @ w

    def backward(d, x, w):
        return (d @ w.T).astype(ml_dtypes.bfloat16), x.astype(np.float64).T @ d

    report = backcheck.check_layer(forward, backward, (x, w))
    assert report.status == "inconclusive", report
    assert [f.elements for f in report.findings if f.kind == "unchecked gradient"] == [["x"]]


def test_configs_sizes_and_none_gradients_are_no_such_inputs():
    def forward(x, shape, cfg):
        return x.reshape(shape) * cfg["scale"]

    def backward(d, x, shape, cfg):
        return d.reshape(x.shape) * cfg["scale"], None, None

    report = backcheck.check_layer(forward, backward, (X, [3, 4], {"scale": 2.0}))
    assert report.status == "pass" and not report.findings, report


@pytest.mark.parametrize("kind", ["bfloat16", "complex"])
def test_a_layer_objects_parameter_of_such_a_kind_with_a_written_gradient(kind):
    if kind == "bfloat16":
        dtype = pytest.importorskip("ml_dtypes").bfloat16
    else:
        dtype = np.complex128
    w = np.random.default_rng(1).normal(size=(3, 2))

    class Dense:
        def __init__(self):
            self.W = w.astype(dtype)

        def forward(self, x):
            self.x = x
            return x @ self.W.real.astype(np.float64)

        def backward(self, d):
            self.dW = (100 * self.x.T @ d).astype(dtype)  # 100x wrong, never compared
            return d @ self.W.real.astype(np.float64).T

    report = backcheck.check_object(Dense(), X)
    assert report.status == "inconclusive", report
    assert [f.elements for f in report.findings if f.kind == "unchecked gradient"] == [["W"]]


def test_a_stepped_parameter_of_such_a_kind_is_named_too():
    w = np.random.default_rng(2).normal(size=(3, 4)).astype(np.complex128)

    class Stepping:
        def __init__(self):
            self.W = w.copy()

        def forward(self, x):
            self.x = x
            return (self.W @ x).real

        def backward(self, dout, lr):
            grad_input = (self.W.T @ dout).real
            self.W -= lr * 3.0 * (dout @ self.x.T)  # 3x the step, never compared
            return grad_input

    report = backcheck.check_object(Stepping(), np.random.default_rng(3).normal(size=(4, 5)))
    assert report.status == "inconclusive", report
    assert [f.elements for f in report.findings if f.kind == "unchecked gradient"] == [["W"]]


def test_a_dict_of_python_floats_with_a_gradient_returned():
    def forward(x, p):
        return x * p["a"]

    def backward(d, x, p):
        return d * p["a"], {"a": 123.0}  # never compared

    report = backcheck.check_layer(forward, backward, (X, {"a": 2.0}))
    assert report.status == "inconclusive", report


def test_bfloat16_alone_to_differentiate_says_how_to_check_it():
    # (the hint said 'pass float arrays' of a float dtype; check_layer said no input was a float array)
    ml_dtypes = pytest.importorskip("ml_dtypes")
    from backcheck.errors import ParamsError

    x = X.astype(ml_dtypes.bfloat16)
    for call in (
        lambda: backcheck.check(lambda a: float(np.sum(a)), x, lambda a: np.ones(a.shape)),
        lambda: backcheck.check_layer(lambda a: a * 2, lambda d, a: 2 * d, (x,)),
    ):
        with pytest.raises(ParamsError, match="bfloat16 \\(ml_dtypes\\)") as info:
            call()
        assert "astype(np.float32)" in (info.value.hint or "") and "backcheck.torch" in (info.value.hint or "")
