"""check_layer and check_object: a backward not linear in dout under a sign flip, a zero dout, a dout of the
wrong shape given to check_object, tied parameters, and a parameter behind a property."""

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError, GradientStructureError

RNG = np.random.default_rng(8)
X = RNG.normal(size=(5, 3))
W = RNG.normal(size=(3, 2))


def lse_forward(x):
    m = x.max()
    return np.asarray(m + np.log(np.exp(x - m).sum()))


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def kinds(report):
    return [f.kind for f in report.findings]


# -- 1. a backward positively homogeneous in dout, but not linear ------------------------------------------------
@pytest.mark.parametrize("upstream", [lambda d: np.maximum(d, 0.0), np.abs], ids=["guided", "abs"])
def test_a_backward_that_drops_or_flips_negative_douts_fails_at_a_positive_dout(upstream):
    x = np.array([0.3, -1.2, 2.0])
    r = backcheck.check_layer(lse_forward, lambda d, x: upstream(d) * softmax(x), (x,), dout=np.asarray(1.5))
    assert r.status == "fail" and "nonlinear backward" in kinds(r), r
    assert next(f for f in r.findings if f.kind == "nonlinear backward").where == "x"


def test_the_same_layer_with_a_linear_backward_passes_at_a_positive_dout():
    x = np.array([0.3, -1.2, 2.0])
    r = backcheck.check_layer(lse_forward, lambda d, x: d * softmax(x), (x,), dout=np.asarray(1.5))
    assert r.ok and "nonlinear backward" not in kinds(r), r


def test_abs_of_a_positive_matrix_dout_fails_as_nonlinear():
    dout = RNG.uniform(0.5, 1.5, size=(5, 2))
    r = backcheck.check_layer(lambda x, w: x @ w, lambda d, x, w: (np.abs(d) @ w.T, x.T @ np.abs(d)), (X, W), dout=dout)
    assert r.status == "fail" and "nonlinear backward" in kinds(r), r


class GuidedLoss:
    """A loss layer whose backward(dout=1.0) keeps only positive upstream gradients."""

    def forward(self, x):
        self.x = x
        return lse_forward(x)

    def backward(self, dout=1.0):
        return np.maximum(dout, 0.0) * softmax(self.x)


def test_a_loss_layer_object_whose_backward_drops_negative_douts_fails():
    r = backcheck.check_object(GuidedLoss(), np.array([0.3, -1.2, 2.0]))
    assert r.status == "fail" and "nonlinear backward" in kinds(r), r


def test_weight_decay_and_clipping_still_fail_as_nonlinear():
    def decayed(d, x, w):
        return d @ w.T, x.T @ d + 0.5 * w

    def clipped(d, x, w):
        return d @ w.T, np.clip(x.T @ d, -0.1, 0.1)

    for backward in (decayed, clipped):
        r = backcheck.check_layer(lambda x, w: x @ w, backward, (X, W))
        assert r.status == "fail" and "nonlinear backward" in kinds(r), (backward.__name__, r)


# -- 2. a zero dout compares nothing -----------------------------------------------------------------------------
def wrong_affine_backward(d, x, w, b):
    return 5 * d @ w.T, -x.T @ d, 3 * d.sum(0)


def test_check_layer_refuses_a_zero_dout_naming_it():
    b = RNG.normal(size=2)
    with pytest.raises(BadInputError) as info:
        backcheck.check_layer(lambda x, w, b: x @ w + b, wrong_affine_backward, (X, W, b), dout=np.zeros((5, 2)))
    assert "dout" in info.value.message and "zero" in info.value.message
    assert "random" in info.value.hint and "dout" in info.value.hint


def test_a_zero_dout_for_one_output_of_two_is_accepted():
    def forward(x):
        return x * 2.0, np.sin(x)

    def backward(dout, x):
        return dout[0] * 2.0 + dout[1] * np.cos(x)

    r = backcheck.check_layer(forward, backward, (X,), dout=(RNG.normal(size=X.shape), np.zeros(X.shape)))
    assert r.ok, r


class Dense:
    def __init__(self):
        self.W = W.copy()

    def forward(self, x):
        self.x = x
        return x @ self.W

    def backward(self, d):
        self.dW = 7 * self.x.T @ d  # wrong
        return d @ self.W.T


def test_check_object_refuses_a_zero_dout_naming_it():
    with pytest.raises(BadInputError) as info:
        backcheck.check_object(Dense(), X, dout=np.zeros((5, 2)))
    assert "dout" in info.value.message and "zero" in info.value.message


# -- 5. check_object's dout of the wrong shape -------------------------------------------------------------------
def test_check_object_names_dout_and_both_shapes_for_a_wrong_shape():
    with pytest.raises(GradientStructureError) as info:
        backcheck.check_object(Dense(), X, dout=np.ones(3))
    assert "dout" in info.value.message and "(3,)" in info.value.message and "(5, 2)" in info.value.message


# -- 4. tied parameters -------------------------------------------------------------------------------------------
class Tied:
    def __init__(self, w, wrong=False):
        self.parameters = {"W": w, "W2": w}  # the same array in two slots
        self.gradients = {"W": np.zeros_like(w), "W2": np.zeros_like(w)}
        self.wrong = wrong

    def forward(self, x):
        self.x = x
        return np.tanh(x @ self.parameters["W"]) @ self.parameters["W2"]

    def backward(self, d):
        h = np.tanh(self.x @ self.parameters["W"])
        self.gradients["W2"] += h.T @ d * (1.5 if self.wrong else 1.0)
        dh = d @ self.parameters["W2"].T * (1 - h**2)
        self.gradients["W"] += self.x.T @ dh
        return dh @ self.parameters["W"].T


def test_tied_parameters_are_judged_once_against_the_sum_of_their_gradients():
    w = RNG.normal(size=(3, 3))
    x = RNG.normal(size=(4, 3))
    r = backcheck.check_object(Tied(w), x)
    assert r.ok, r
    assert any("W2" in n and "same array" in n for n in r.notes), r.notes
    bad = backcheck.check_object(Tied(w, wrong=True), x)
    assert bad.status == "fail", bad


# -- 5. a parameter behind a property ----------------------------------------------------------------------------
class Prop:
    def __init__(self, w):
        self._W = w
        self.dW = np.zeros_like(w)

    @property
    def W(self):
        return self._W

    def forward(self, x):
        self.x = x
        return x @ self._W

    def backward(self, d):
        self.dW = self.x.T @ d
        return d @ self._W.T


def test_a_parameter_behind_a_property_is_checked_with_its_public_gradient():
    r = backcheck.check_object(Prop(W.copy()), X)
    assert r.ok and [lf.name for lf in r.leaves] == ["x", "_W"], r
    assert any("gradient in self.dW" in n for n in r.notes), r.notes

    class WrongProp(Prop):
        def backward(self, d):
            super().backward(d)
            self.dW = self.dW * 1.5
            return d @ self._W.T

    bad = backcheck.check_object(WrongProp(W.copy()), X)
    assert bad.status == "fail" and bad.leaf("_W").status == "fail", bad


class GradientElsewhere(Prop):
    """Keeps the gradient under a name no pattern finds: the array backward rewrites looks like a gradient."""

    def __init__(self, w):
        super().__init__(w)
        self.W_delta = np.zeros_like(w)

    def backward(self, d):
        self.W_delta = self.x.T @ d
        return d @ self._W.T


def test_an_attribute_named_like_a_gradient_is_not_called_an_updated_parameter():
    with pytest.raises(BadInputError) as info:
        backcheck.check_object(GradientElsewhere(W.copy()), X)
    text = f"{info.value.message} {info.value.hint}"
    assert "dW_delta" not in text and "optimizer step" not in text, text
    assert "gradient of self._W" in info.value.message and "grads={'_W': 'W_delta'}" in info.value.hint


class ZeroDefaultLoss:
    """A loss layer whose backward's dout defaults to 0: a default that compares nothing is not used."""

    def forward(self, x):
        self.x = x
        return lse_forward(x)

    wrong = 0.0

    def backward(self, dout=0.0):
        return dout * softmax(self.x) * (1.0 + self.wrong)  # linear in dout: at dout = 0 any factor passed


def test_a_backward_whose_dout_defaults_to_zero_is_checked_at_a_random_dout():
    x = np.array([0.3, -1.2, 2.0])
    r = backcheck.check_object(ZeroDefaultLoss(), x)
    assert r.ok and not any("dout = 0" in n for n in r.notes), r
    bad = ZeroDefaultLoss()
    bad.wrong = 0.5
    assert backcheck.check_object(bad, x).status == "fail"


class TiedAttributes:
    """Tied weights as two attributes holding the same array, each slot's gradient on its own attribute."""

    def __init__(self, w, forget=False):
        self.W = w
        self.V = w
        self.forget = forget

    def forward(self, x):
        self.x = x
        return np.tanh(x @ self.W) @ self.V

    def backward(self, d):
        h = np.tanh(self.x @ self.W)
        self.dV = h.T @ d
        dh = d @ self.V.T * (1 - h**2)
        self.dW = self.x.T @ dh * (0.0 if self.forget else 1.0)
        return dh @ self.W.T


def test_tied_attributes_pass_and_a_forgotten_slot_gradient_fails():
    w = RNG.normal(size=(3, 3))
    x = RNG.normal(size=(4, 3))
    r = backcheck.check_object(TiedAttributes(w), x, params=["W", "V"])
    assert r.ok and [lf.name for lf in r.leaves] == ["x", "W"], r
    assert backcheck.check_object(TiedAttributes(w, forget=True), x, params=["W", "V"]).status == "fail"
