"""What check_layer and check_object tell the author of a layer that does not follow their conventions: a forward
pass returning the layer object, a CS231n pair without cache=True, a loss whose float target is a constant; and
where check_object finds gradients kept under private or unusual names."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError, GradientStructureError

RNG = np.random.default_rng(0)
X = RNG.normal(size=(4, 3))
W, B = RNG.normal(size=(3, 2)), RNG.normal(size=2)


# -- a forward pass that returns the layer (darknet style) --------------------------------------------------------
class _KeepsOutput:
    def forward(self, x):
        self.output = np.tanh(x)
        self.delta = np.zeros_like(x)
        return self

    def backward(self, delta):
        if np.shape(delta) != self.output.shape:
            raise ValueError("Incorrect input shape")
        delta[:] = self.delta * (1 - self.output**2)
        return self


def test_check_object_names_a_forward_that_returns_the_layer_itself():
    with pytest.raises(BadInputError, match=r"_KeepsOutput\.forward returned the layer object itself") as info:
        backcheck.check_object(_KeepsOutput(), X)
    assert "self.output" in (info.value.hint or ""), info.value.hint


def test_check_layer_names_a_forward_that_returns_an_object():
    with pytest.raises(BadInputError, match=r"returned a _KeepsOutput object") as info:
        backcheck.check_layer(lambda x: _KeepsOutput().forward(x), lambda d, x: d * (1 - np.tanh(x) ** 2), (X,))
    assert "self.output" in (info.value.hint or "")


# -- (out, cache) without cache=True ----------------------------------------------------------------------------
def _affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def _affine_backward(dout, cache):
    x, w, _ = cache
    return dout @ w.T, x.T @ dout, dout.sum(0)


def test_a_cs231n_pair_without_cache_true_is_told_to_pass_it():
    with pytest.raises(BadInputError, match=r"_affine_forward returned a pair") as info:
        backcheck.check_layer(_affine_forward, _affine_backward, (X, W, B))
    assert "cache=True" in (info.value.hint or "")
    assert backcheck.check_layer(_affine_forward, _affine_backward, (X, W, B), cache=True).ok


def test_a_pair_whose_second_item_is_not_float_hints_cache_true():
    # one input: backward(dout, cache) also reads as backward(dout, x); the cache's dtype tells
    def forward(x):
        return np.tanh(x), {"x": x, "calls": 1}

    with pytest.raises(BadInputError, match=r"has dtype int") as info:
        backcheck.check_layer(forward, lambda d, cache: d * (1 - np.tanh(cache["x"]) ** 2), (X,))
    assert "cache=True" in (info.value.hint or "")


def test_a_two_output_layer_with_a_two_argument_backward_is_not_taken_for_a_cache():
    def forward(x):
        return np.sin(x), np.cos(x)

    def backward(dout, x):
        return dout[0] * np.cos(x) - dout[1] * np.sin(x)

    assert backcheck.check_layer(forward, backward, (X,)).ok


# -- a loss with a float target ---------------------------------------------------------------------------------
class _SoftmaxCrossEntropy:
    def __call__(self, x, t):
        self.t = t
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        self.y = e / e.sum(axis=-1, keepdims=True)
        return np.copy(-np.sum(t * np.log(self.y)) / self.y.shape[0])

    def delta(self, dout=1):
        return (self.y - self.t) / self.t.shape[0]


T = np.eye(3)[[0, 2, 1, 0]]


def test_check_object_hints_constant_for_a_float_target():
    # one-hot targets are held constant as labels (a note says so); smoothed ones are refused, with the hint
    labels = backcheck.check_object(_SoftmaxCrossEntropy(), X, T, forward="__call__", backward="delta")
    assert labels.ok and any("0/1 labels" in n for n in labels.notes), labels
    with pytest.raises(GradientStructureError) as info:
        backcheck.check_object(_SoftmaxCrossEntropy(), X, 0.9 * T + 0.1 / 3, forward="__call__", backward="delta")
    assert "constant=['t']" in (info.value.hint or ""), info.value.hint
    report = backcheck.check_object(_SoftmaxCrossEntropy(), X, T, forward="__call__", backward="delta", constant=["t"])
    assert report.ok
    for given in ([1], 1, np.int64(1)):  # the target by its position
        by_position = backcheck.check_object(
            _SoftmaxCrossEntropy(), X, T, forward="__call__", backward="delta", constant=given
        )
        assert by_position.ok and [lf.name for lf in by_position.leaves if lf.n_checked] == ["x"], given


def test_check_layer_hints_constant_for_a_float_target():
    def loss(x, t):
        return _SoftmaxCrossEntropy()(x, t)

    def grad(d, x, t):
        layer = _SoftmaxCrossEntropy()
        layer(x, t)
        return layer.delta() * d

    with pytest.raises(GradientStructureError) as info:
        backcheck.check_layer(loss, grad, (X, T))
    assert "constant=['t']" in (info.value.hint or ""), info.value.hint
    assert backcheck.check_layer(loss, grad, (X, T), constant=["t"]).ok


def test_constant_and_wrt_take_input_positions_as_well_as_names():
    def masked(x, w, mask):
        return np.tanh(x @ w + mask)

    def backward(d, x, w, mask):
        g = d * (1 - masked(x, w, mask) ** 2)
        return g @ w.T, x.T @ g, None

    mask = np.where(RNG.normal(size=(4, 2)) > 0, 0.0, -1.0)
    by_name = backcheck.check_layer(masked, backward, (X, W, mask), constant=["mask"])
    assert by_name.ok
    for given in ([2], 2, [-1], np.int64(2)):
        assert backcheck.check_layer(masked, backward, (X, W, mask), constant=given).ok, given
    only_w = backcheck.check_layer(masked, backward, (X, W, mask), wrt=[1])
    assert [lf.name for lf in only_w.leaves if lf.n_checked] == ["w"]
    with pytest.raises(BadInputError, match="position 3") as info:
        backcheck.check_layer(masked, backward, (X, W, mask), constant=[3])
    assert "from 0 to 2" in (info.value.hint or "")


# -- gradients under private or unusual names -------------------------------------------------------------------
class _PrivateDense:
    def __init__(self, w, b, k=1.0):
        self._w, self._b, self.k = w, b, k
        self._dw, self._db = None, None

    @property
    def gradients(self):
        return None if self._dw is None else (self._dw, self._db)

    def forward(self, x):
        self._x = np.array(x, copy=True)
        return x @ self._w + self._b

    def backward(self, d):
        self._dw = self.k * self._x.T @ d
        self._db = d.sum(axis=0)
        return d @ self._w.T


def test_private_parameters_find_their_private_gradients():
    report = backcheck.check_object(_PrivateDense(W, B), X)
    assert report.ok and [leaf.name for leaf in report.leaves] == ["x", "_w", "_b"], report
    assert backcheck.check_object(_PrivateDense(W, B, 0.5), X).status == "fail"


class _TupleGradients(_PrivateDense):
    @property
    def gradients(self):
        return (getattr(self, "_g", None),)

    def backward(self, d):
        self._g = self._x.T @ d  # under a name nothing finds
        return d @ self._w.T


def test_where_it_looked_names_a_gradients_attribute_that_is_not_a_dict():
    with pytest.raises(BadInputError, match=r"self\.gradients \(a tuple, not a dict\)") as info:
        backcheck.check_object(_TupleGradients(W, B), X, params=["_w"])
    assert "self.gradients['_w']" not in str(info.value)


class _ShortNames:
    def __init__(self, w, b, k=1.0):
        self.weights, self.biases, self.k = w, b, k

    def forward(self, inp):
        self.inp = inp
        return inp @ self.weights + self.biases

    def backward(self, grads):
        self.d_c_b = grads.sum(axis=0)[None]
        self.d_c_w = self.k * self.inp.T @ grads
        return grads @ self.weights.T


def test_gradients_named_by_the_parameters_initial_are_found_by_shape():
    report = backcheck.check_object(_ShortNames(W, B[None]), X)
    assert report.ok and [leaf.name for leaf in report.leaves] == ["inp", "weights", "biases"], report
    assert any("self.d_c_w" in n for n in report.notes), report.notes
    assert backcheck.check_object(_ShortNames(W, B[None], 0.5), X).status == "fail"


class _SameShapes(_ShortNames):
    def backward(self, grads):
        self.d_c_w = self.inp.T @ grads
        self.d_w = np.zeros_like(self.weights)  # a second gradient-like array of the same shape: ambiguous
        return grads @ self.weights.T


def test_a_gradient_found_by_shape_must_be_the_only_one_that_fits():
    w = RNG.normal(size=(3, 2))
    with pytest.raises(BadInputError, match=r"no gradient of self\.weights"):
        backcheck.check_object(_SameShapes(w, B[None]), X, params=["weights"])


def test_a_one_input_pair_whose_backward_fails_hints_cache_true():
    # forward(x) -> (out, cache) and backward(dout, cache): its signature reads as backward(dout, x) too
    def forward(x):
        y = np.tanh(x)
        return y, (x, y)

    def backward(dout, cache):
        _, y = cache
        return dout * (1 - y**2)

    with pytest.raises(backcheck.errors.UserFunctionError, match="backward raised") as info:
        backcheck.check_layer(forward, backward, (X,))
    assert "cache=True" in (info.value.hint or ""), info.value.hint
    assert backcheck.check_layer(forward, backward, (X,), cache=True).ok
