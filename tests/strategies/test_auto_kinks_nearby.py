"""Under 'projected' and 'auto', elements judged one by one where several kinks meet (a dead ReLU unit: its
weights and bias exactly 0, so its input is 0 for every example) are re-checked at a nearby point as under
'full': the gradient function is there to call. They failed, with a note saying the gradient was precomputed."""

import numpy as np
import pytest

import backcheck


def _net(seed=0, n_in=10, hidden=8, classes=3, batch=6):
    r = np.random.default_rng(seed)
    p = {
        "W1": 0.3 * r.standard_normal((n_in, hidden)),
        "b1": 0.1 * r.standard_normal(hidden),
        "W2": 0.3 * r.standard_normal((hidden, classes)),
        "b2": 0.1 * r.standard_normal(classes),
    }
    p["W1"][:, 2] = 0.0
    p["b1"][2] = 0.0  # a dead unit: its ReLU input is exactly 0 for every example
    X = r.standard_normal((batch, n_in))
    X[0] = 0.0  # and an example of zeros
    y = r.integers(0, classes, batch)

    def loss_and_grads(p):
        z = X @ p["W1"] + p["b1"]
        h = np.maximum(z, 0)
        s = h @ p["W2"] + p["b2"]
        s = s - s.max(1, keepdims=True)
        lp = s - np.log(np.exp(s).sum(1, keepdims=True))
        d = np.exp(lp)
        d[np.arange(batch), y] -= 1
        d /= batch
        dz = (d @ p["W2"].T) * (z > 0)
        return -lp[np.arange(batch), y].mean(), {"W1": X.T @ dz, "b1": dz.sum(0), "W2": h.T @ d, "b2": d.sum(0)}

    return p, loss_and_grads


@pytest.mark.parametrize("strategy", ["auto", "projected"])
@pytest.mark.parametrize("seed", [0, 1])
def test_a_dead_relu_unit_passes_under_random_directions(strategy, seed):
    p, lg = _net(seed)
    report = backcheck.check(lambda q: lg(q)[0], p, lambda q: lg(q)[1], strategy=strategy)
    assert report.status == "pass", report
    assert not any("precomputed gradient" in n for n in report.notes), report.notes


def test_a_wrong_gradient_beside_the_dead_unit_still_fails_where_it_is_wrong():
    p, lg = _net(0)

    def wrong(q):
        g = lg(q)[1]
        g["W2"] = g["W2"] * 1.5
        return g

    report = backcheck.check(lambda q: lg(q)[0], p, wrong, strategy="auto")
    assert report.status == "fail", report
    assert [lf.name for lf in report.leaves if lf.status == "fail"] == ["q['W2']"], report
