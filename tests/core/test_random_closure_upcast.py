"""Whether a float32 loss is differenced on float64 copies is decided with its random streams replayed: a CS231n
model whose loss reads its float32 parameters through a closure and draws a float64 dropout mask gave another
value at the float64 copies only because the mask was drawn anew, the copies were differenced, and f never read
them: every element failed as an unread input."""

import numpy as np
import pytest

import backcheck


class Model:
    def __init__(self, seed=0, reads_argument=False):
        rng = np.random.default_rng(seed)
        self.X = rng.standard_normal((6, 5)).astype(np.float32)
        self.y = rng.integers(0, 3, 6)
        self.params = {
            "W1": (0.5 * rng.standard_normal((5, 8))).astype(np.float32),
            "b1": np.zeros(8, np.float32),
            "W2": (0.5 * rng.standard_normal((8, 3))).astype(np.float32),
        }
        self.rng = np.random.default_rng(42)

    def loss(self, p=None):
        p = self.params if p is None else p
        h = np.tanh(self.X @ p["W1"] + p["b1"])
        mask = (self.rng.random(h.shape) < 0.7) / 0.7  # float64, as CS231n's dropout_forward draws it
        hd = h * mask
        s = hd @ p["W2"]
        s = s - s.max(1, keepdims=True)
        pr = np.exp(s)
        pr /= pr.sum(1, keepdims=True)
        rows = np.arange(len(self.y))
        d = pr.copy()
        d[rows, self.y] -= 1
        d /= len(self.y)
        dh = (d @ p["W2"].T) * mask * (1 - h**2)
        grads = {"W1": self.X.T @ dh, "b1": dh.sum(0), "W2": hd.T @ d}
        return -np.log(pr[rows, self.y]).mean(), grads


@pytest.mark.parametrize("seed", [0, 1])
def test_a_random_closure_over_float32_parameters_passes(seed):
    model = Model(seed)
    before = {k: v.copy() for k, v in model.params.items()}
    report = backcheck.check(lambda p: model.loss()[0], model.params, lambda p: model.loss()[1])
    assert report.status == "pass", report
    assert not report.findings, report.findings
    assert not any("float64" in n and "numeric side" in n for n in report.notes), report.notes
    for k, v in before.items():
        np.testing.assert_array_equal(model.params[k], v)


def test_a_random_loss_reading_its_float32_argument_is_still_differenced_in_float64():
    model = Model(0)
    report = backcheck.check(lambda p: model.loss(p)[0], model.params, lambda p: model.loss(p)[1])
    assert report.status == "pass", report
    assert any("numeric side was evaluated in float64" in n for n in report.notes), report.notes


def test_a_wrong_gradient_of_a_random_closure_still_fails_where_it_is_wrong():
    model = Model(0)

    def wrong(p):
        g = model.loss()[1]
        g["W2"] = 1.5 * g["W2"]
        return g

    report = backcheck.check(lambda p: model.loss()[0], model.params, wrong)
    assert report.status == "fail", report
    assert [lf.name for lf in report.leaves if lf.status == "fail"] == ["p['W2']"], report
