"""check_object and parameters tied through a numpy view (``self.W_out = self.E.T``): every evaluation runs on a
deep copy of the layer, which would make the view an array of its own and check the two slots apart."""

import numpy as np
import pytest

import backcheck
from backcheck.errors import ParamsError

V, D, N = 6, 4, 5


class TiedLM:
    """An embedding ``E`` and an output projection ``W_out`` tied to it (``tie``: how ``W_out`` is held).

    ``grads``: where backward puts the shared weight's gradient: all of it in ``dE`` ("total"), the embedding side
    in ``dE`` and the projection side in ``dW_out`` ("split": the reviewer's "tie forgotten" layer, right when the
    slots' gradients are summed), the embedding side only ("lost"), or the total in ``dE`` and the projection side
    again in ``dW_out`` ("twice")."""

    def __init__(self, E, grads, tie="view"):
        self.E = E
        self.W_out = {"view": lambda: E.T, "same": lambda: E, "copy": lambda: E.T.copy()}[tie]()
        self.same = tie == "same"
        self.grads = grads
        self.dE = np.zeros_like(E)
        self.dW_out = np.zeros_like(self.W_out)

    def _W(self):  # the output projection as a (V, D) matrix
        return self.W_out if self.same else self.W_out.T

    def forward(self, h):
        self.h = h
        a = np.tanh(h @ self.E.T)
        return a @ self._W()

    def backward(self, dout):
        a = np.tanh(self.h @ self.E.T)
        d_out_side = a.T @ dout  # (V, D): through W_out
        dz = (dout @ self._W().T) * (1 - a**2)
        d_in_side = dz.T @ self.h  # (V, D): through E
        self.dE += d_in_side + (d_out_side if self.grads in ("total", "twice") else 0)
        if self.grads in ("split", "twice"):
            self.dW_out += d_out_side if self.same else d_out_side.T
        return dz @ self.E


@pytest.fixture
def point():
    rng = np.random.default_rng(0)
    return rng.normal(size=(V, D)), rng.normal(size=(N, D)), rng.normal(size=(N, D))


def true_dE(E, h, dout):
    """dL/dE of the tied layer, by central differences on the weight itself (both slots move)."""
    eps = 1e-6
    num = np.zeros_like(E)
    for i in np.ndindex(E.shape):
        plus, minus = E.copy(), E.copy()
        plus[i] += eps
        minus[i] -= eps
        fp = np.sum(TiedLM(plus, "total").forward(h) * dout)
        fm = np.sum(TiedLM(minus, "total").forward(h) * dout)
        num[i] = (fp - fm) / (2 * eps)
    return num


def test_the_layers_differ_only_in_where_the_gradient_is(point):
    # the premise: "total" holds the shared weight's gradient in dE, "split" in dE + dW_out.T, "lost" nowhere
    E, h, dout = point
    true = true_dE(E, h, dout)
    tol = 1e-6 * (1 + np.abs(true).max())
    off = {}
    for grads in ("total", "split", "lost", "twice"):
        lay = TiedLM(E.copy(), grads)
        lay.forward(h)
        lay.backward(dout)
        off[grads] = (np.abs(lay.dE - true).max(), np.abs(lay.dE + lay.dW_out.T - true).max())
    assert off["total"][0] < tol < off["split"][0] and off["split"][1] < tol
    assert off["lost"][1] > tol and off["twice"][1] > tol


def status(report):
    return {lf.name: lf.status for lf in report.leaves}


def _unchanged(lay, E):
    """The user's layer after a check: its weight's values, and W_out still a view of E."""
    return np.array_equal(lay.E, E) and lay.W_out.base is lay.E and not lay.dE.any()


@pytest.mark.parametrize("grads", ["total", "split"])
def test_a_view_tie_is_one_weight_checked_against_its_total_gradient(point, grads):
    # "total": the shared weight's gradient in dE (a false alarm before); "split": dE + dW_out.T, the sum a
    # same-array tie is checked against
    E, h, dout = point
    lay = TiedLM(E.copy(), grads)
    r = backcheck.check_object(lay, h, dout=dout)
    assert r.ok and [lf.name for lf in r.leaves] == ["h", "E"], r
    assert any(n.startswith("W_out is a view of E") for n in r.notes), r.notes
    assert _unchanged(lay, E)
    # named view first: still checked as the array the view is taken of
    named = backcheck.check_object(lay, h, dout=dout, params=["W_out", "E"], grads={"W_out": "dW_out", "E": "dE"})
    assert named.ok and [lf.name for lf in named.leaves] == ["h", "E"], named


@pytest.mark.parametrize("grads", ["lost", "twice"])
def test_a_view_tie_with_a_wrong_total_fails(point, grads):
    # "lost": the projection side nowhere; "twice": the total in dE and the projection side again in dW_out
    E, h, dout = point
    lay = TiedLM(E.copy(), grads)
    r = backcheck.check_object(lay, h, dout=dout)
    assert r.status == "fail" and status(r) == {"h": "pass", "E": "fail"}, r
    assert _unchanged(lay, E)


def test_a_view_without_a_gradient_moves_with_the_weight(point):
    # no dW_out at all: W_out is left out (no gradient) and still moves with E in every evaluation (before, it
    # stayed put in the copies: the total in dE failed, the embedding side alone passed)
    E, h, dout = point
    lay = TiedLM(E.copy(), "total")
    del lay.dW_out
    r = backcheck.check_object(lay, h, dout=dout)
    assert r.ok and [lf.name for lf in r.leaves] == ["h", "E"], r
    assert any(n.startswith("W_out (self.W_out) shares memory with E") for n in r.notes), r.notes
    lay = TiedLM(E.copy(), "lost")
    del lay.dW_out
    assert backcheck.check_object(lay, h, dout=dout).status == "fail"


class TwoViews:
    """A weight ``E`` and a parameter ``F`` made from it by ``make`` (a slice, a reshape, a part), in dicts;
    ``wrong``: F's gradient left out."""

    def __init__(self, E, make, wrong=False):
        self.parameters = {"E": E}
        self.parameters["F"] = make(E)
        self.gradients = {k: np.zeros_like(v) for k, v in self.parameters.items()}
        self.wrong = wrong

    def forward(self, x):
        self.x = x
        return x @ self.parameters["E"].T + np.sum(self.parameters["F"] ** 2)

    def backward(self, d):
        self.gradients["E"] += d.T @ self.x
        self.gradients["F"] += 0.0 if self.wrong else 2 * self.parameters["F"] * np.sum(d)
        return d @ self.parameters["E"]


VIEWS = {
    "slice": lambda E: E[:],
    "reshape": lambda E: E.reshape(D, V),
    "part": lambda E: E.ravel()[: V * D // 2],
    "strided": lambda E: E[1::2, ::-1],
}


@pytest.mark.parametrize("make", VIEWS.values(), ids=VIEWS.keys())
def test_other_views_are_tied_too(point, make):
    E, h, _ = point
    lay = TwoViews(E.copy(), make)
    r = backcheck.check_object(lay, h)
    assert r.ok and [lf.name for lf in r.leaves] == ["x", "E"], r
    assert any(n.startswith("F is a view of E") for n in r.notes), r.notes
    assert np.array_equal(lay.parameters["E"], E) and np.shares_memory(lay.parameters["F"], lay.parameters["E"])
    bad = backcheck.check_object(TwoViews(E.copy(), make, wrong=True), h)
    assert bad.status == "fail" and status(bad) == {"x": "pass", "E": "fail"}, bad


def test_a_view_tie_upcast_keeps_the_tie(point):
    E, h, dout = point
    lay = TiedLM(E.astype(np.float32), "total")
    r = backcheck.check_object(lay, h.astype(np.float32), dout=dout.astype(np.float32), upcast=True)
    assert r.ok and [lf.name for lf in r.leaves] == ["h", "E"], r
    lay = TiedLM(E.astype(np.float32), "lost")
    bad = backcheck.check_object(lay, h.astype(np.float32), dout=dout.astype(np.float32), upcast=True)
    assert bad.status == "fail", bad


def test_a_broadcast_view_is_refused_naming_both_slots(point):
    E, h, _ = point
    lay = TwoViews(E.copy(), lambda E: np.broadcast_to(E[0], (3, D)))
    with pytest.raises(ParamsError) as info:
        backcheck.check_object(lay, h)
    message = info.value.message
    assert "self.parameters['F']" in message and "self.parameters['E']" in message and "broadcast" in message


def test_views_that_overlap_without_a_holder_are_refused(point):
    E, h, _ = point

    class Halves(TwoViews):
        def __init__(self, buf):
            super().__init__(buf[: V * D].reshape(V, D), lambda E: buf[V * D // 2 :])

    with pytest.raises(ParamsError) as info:
        backcheck.check_object(Halves(np.concatenate([E.ravel(), E.ravel()])), h)
    assert "self.parameters['E']" in info.value.message and "self.parameters['F']" in info.value.message
    assert "holds all the others" in info.value.message


def test_a_same_array_tie_still_checks_against_the_sum(point):
    E, h, dout = point
    for grads in ("total", "split"):
        lay = TiedLM(E.copy(), grads, tie="same")
        r = backcheck.check_object(lay, h, dout=dout, params=["E", "W_out"])
        assert r.ok and [lf.name for lf in r.leaves] == ["h", "E"], r
        assert any("W_out" in n and "same array" in n for n in r.notes), r.notes
        assert lay.W_out is lay.E  # the user's tie is left as it was
    for grads in ("lost", "twice"):
        wrong = backcheck.check_object(TiedLM(E.copy(), grads, tie="same"), h, dout=dout, params=["E", "W_out"])
        assert wrong.status == "fail", (grads, wrong)


def test_independent_copies_are_two_parameters(point):
    E, h, dout = point
    lay = TiedLM(E.copy(), "split", tie="copy")
    before = (lay.E.copy(), lay.W_out.copy())
    r = backcheck.check_object(lay, h, dout=dout)
    assert r.ok and [lf.name for lf in r.leaves] == ["h", "E", "W_out"], r
    assert np.array_equal(lay.E, before[0]) and np.array_equal(lay.W_out, before[1])
    assert not np.shares_memory(lay.E, lay.W_out)


class OneGradient:
    """Tied weights with one gradient array for both slots (``self.gradients = {"W": g, "W2": g}``), or, for
    ``tie="view"``, W2 = W.T with its gradient the view dW.T of W's; ``scale``: the second use's part scaled."""

    def __init__(self, w, tie="same", scale=1.0):
        g = np.zeros_like(w)
        self.parameters = {"W": w, "W2": w if tie == "same" else w.T}
        self.gradients = {"W": g, "W2": g if tie == "same" else g.T}
        self.t = (lambda a: a) if tie == "same" else (lambda a: a.T)
        self.scale = scale

    def forward(self, x):
        self.x = x
        return np.tanh(x @ self.parameters["W"]) @ self.t(self.parameters["W2"])

    def backward(self, d):
        h = np.tanh(self.x @ self.parameters["W"])
        self.gradients["W2"] += self.t(h.T @ d) * self.scale
        dh = d @ self.t(self.parameters["W2"]).T * (1 - h**2)
        self.gradients["W"] += self.x.T @ dh
        return dh @ self.parameters["W"].T


@pytest.mark.parametrize("tie", ["same", "view"])
def test_one_gradient_array_for_tied_slots_is_read_once(tie):
    rng = np.random.default_rng(1)
    w, x = rng.normal(size=(3, 3)), rng.normal(size=(4, 3))
    r = backcheck.check_object(OneGradient(w, tie), x)
    assert r.ok and [lf.name for lf in r.leaves] == ["x", "W"], r
    bad = backcheck.check_object(OneGradient(w, tie, scale=1.5), x)
    assert bad.status == "fail" and status(bad) == {"x": "pass", "W": "fail"}, bad
