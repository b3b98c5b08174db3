"""check_layer / check_object on narrow inputs: the float64 copies of the numeric side are used only for a forward
pass that computes the same function from them, judged at the inputs' precision (not the output's), and a
forward pass that writes into its inputs is reported once, as in float64, and never blamed on backward."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck


# -- a float32 layer that returns float64 ------------------------------------------------------------------------
def _tanh_by_dtype(x):
    # casts to float64 inside, so its output is float64 for float32 inputs too; its float32 path scales by 2
    k = 2.0 if x.dtype == np.float32 else 1.0
    return np.tanh(x.astype(np.float64)) * k


def _tanh_by_dtype_backward(d, x, k=2.0):
    return (k * d * (1 - np.tanh(x.astype(np.float64)) ** 2)).astype(x.dtype)


X32 = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)


def test_a_float32_layer_with_float64_output_is_differenced_as_the_function_it_runs():
    right = backcheck.check_layer(_tanh_by_dtype, _tanh_by_dtype_backward, (X32,))
    assert right.ok, right
    half = backcheck.check_layer(_tanh_by_dtype, lambda d, x: _tanh_by_dtype_backward(d, x, 1.0), (X32,))
    assert half.status == "fail", half
    assert not any("evaluated in float64" in n for n in right.notes), right.notes


class _TanhByDtype:
    def __init__(self, k=2.0):
        self.k = k

    def forward(self, x):
        self.x = x
        return _tanh_by_dtype(x)

    def backward(self, d):
        return _tanh_by_dtype_backward(d, self.x, self.k)


def test_a_float32_layer_object_with_float64_output_is_differenced_as_the_function_it_runs():
    assert backcheck.check_object(_TanhByDtype(), X32).ok
    assert backcheck.check_object(_TanhByDtype(1.0), X32).status == "fail"


def _confident_ce(x):
    # float32 arithmetic, float64 output: -log p at p near 1 rounds far above eps32 of itself
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return -np.log(p[np.arange(6), [0, 1, 2, 3, 0, 1]]).astype(np.float64)


def _confident_ce_backward(dout, x, scale=1.0):
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(6), [0, 1, 2, 3, 0, 1]] -= 1
    return (p * dout[:, None] * scale).astype(x.dtype)


@pytest.mark.parametrize("seed", range(3))
def test_a_confident_float32_loss_with_float64_output_is_judged_at_float32s_rounding(seed):
    # the float64 copies compute the same function up to float32's rounding of unit-sized intermediates
    x = np.random.default_rng(seed).normal(size=(6, 4)).astype(np.float32)
    x[np.arange(6), [0, 1, 2, 3, 0, 1]] += 9.0
    assert backcheck.check_layer(_confident_ce, _confident_ce_backward, (x,)).ok
    wrong = backcheck.check_layer(_confident_ce, lambda d, x: _confident_ce_backward(d, x, 1.02), (x,))
    assert wrong.status == "fail"


# -- a forward pass that writes into its input -------------------------------------------------------------------
def _double_in_place(x):
    x *= 2.0
    return x


def _mutations(report):
    return [f for f in report.findings if f.kind == "mutation"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_forward_writing_into_its_input_is_reported_once_in_every_dtype(dtype):
    x = np.random.default_rng(1).normal(size=(3, 4)).astype(dtype)
    x0 = x.copy()
    report = backcheck.check_layer(_double_in_place, lambda d, x: 2.0 * d, (x,))
    assert report.status == "fail", report
    found = _mutations(report)
    assert len(found) == 1 and found[0].where == "_double_in_place" and " x " in found[0].message, found
    assert report.leaves[0].n_mismatch == 0, report  # the gradient itself is right
    np.testing.assert_array_equal(x, x0)


class _ScaleInPlace:
    def forward(self, a):
        a *= 2.0
        return a

    def backward(self, d):
        return 2.0 * d


class _ReluInPlace:
    def forward(self, x):
        self.x = x
        x[x < 0] = 0
        return x

    def backward(self, d):
        return d * (self.x > 0)  # reads only


class _ReluInPlaceBoth(_ReluInPlace):
    def backward(self, d):
        g = d * (self.x > 0)
        self.x *= 0.5  # and writes into the stored input: backward's own write
        return g


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls", [_ScaleInPlace, _ReluInPlace])
def test_a_layer_objects_forward_write_is_its_forwards_alone(cls, dtype):
    x = np.random.default_rng(2).normal(size=(3, 4)).astype(dtype)
    report = backcheck.check_object(cls(), x)
    assert report.status == "fail", report
    found = _mutations(report)
    assert [f.where for f in found] == [f"{cls.__name__}.forward"], found


def test_a_backward_that_writes_after_its_forward_did_is_still_named():
    x = np.random.default_rng(3).normal(size=(3, 4))
    found = _mutations(backcheck.check_object(_ReluInPlaceBoth(), x))
    assert sorted(f.where for f in found) == ["_ReluInPlaceBoth.backward", "_ReluInPlaceBoth.forward"], found


class _DropoutInPlace:
    """Draws its mask from numpy's global generator and writes into its input and into dout."""

    def __init__(self, keep):
        self.keep = keep

    def forward(self, a):
        self.mask = np.random.rand(*a.shape) < self.keep
        a *= self.mask
        a /= self.keep
        return a

    def backward(self, d):
        d *= self.mask
        d /= self.keep
        return d


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_random_forward_writing_into_its_input_is_a_mutation_not_randomness(dtype):
    x = np.random.default_rng(4).normal(size=(3, 4)).astype(dtype)
    report = backcheck.check_object(_DropoutInPlace(0.6), x)
    assert report.status == "fail", report
    found = sorted((f.where, "dout" in f.message) for f in _mutations(report))
    assert found == [("_DropoutInPlace.forward", False)], found
    assert [f.where for f in report.findings if f.kind == "dout written"] == ["_DropoutInPlace.backward"]
