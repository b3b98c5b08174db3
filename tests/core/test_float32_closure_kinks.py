"""A float32 network checked through a closure (the loss reads its float32 parameters itself, CS231n's way): the
steps of a Richardson table cross a ReLU input a few 1e-3 from 0, and the table's column still converges, to a
value some percent off. Where a table started below agrees with the rule and the one-sided slopes' gap did not
halve with the step (a kink inside it), the first table's mismatch is not confirmed. A correct conv net (conv,
ReLU, max pool, affine) failed; a wrong rule still fails."""

import numpy as np
import pytest

import backcheck

# a small CS231n ThreeLayerConvNet (conv 3x3 pad 1 - ReLU - 2x2 max pool - affine - ReLU - affine - softmax)


def conv(x, w, b):
    N, C, H, W = x.shape
    F, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.stack(
        [np.stack([xp[:, :, i : i + H, j : j + W] for j in range(k)], 2) for i in range(k)], 2
    )  # N C k k H W
    return np.einsum("ncijhw,fcij->nfhw", cols, w) + b[None, :, None, None], cols


def net(p, X, y, reg=0.01):
    c, cols = conv(X, p["W1"], p["b1"])
    r1 = np.maximum(c, 0)
    N, F, H, W = r1.shape
    win = r1.reshape(N, F, H // 2, 2, W // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(N, F, H // 2, W // 2, 4)
    am = win.argmax(-1)
    pool = win.max(-1)
    flat = pool.reshape(N, -1)
    a2 = flat @ p["W2"] + p["b2"]
    r2 = np.maximum(a2, 0)
    s = r2 @ p["W3"] + p["b3"]
    s = s - s.max(1, keepdims=True)
    lp = s - np.log(np.exp(s).sum(1, keepdims=True))
    loss = -lp[np.arange(N), y].mean() + 0.5 * reg * sum(np.sum(p[k] ** 2) for k in ("W1", "W2", "W3"))
    d = np.exp(lp)
    d[np.arange(N), y] -= 1
    d /= N
    g = {"W3": r2.T @ d + reg * p["W3"], "b3": d.sum(0)}
    d = (d @ p["W3"].T) * (a2 > 0)
    g["W2"] = flat.T @ d + reg * p["W2"]
    g["b2"] = d.sum(0)
    dpool = (d @ p["W2"].T).reshape(pool.shape)
    dwin = np.eye(4, dtype=dpool.dtype)[am] * dpool[..., None]  # first argmax gets the gradient
    dr1 = dwin.reshape(N, F, H // 2, W // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(N, F, H, W)
    dc = dr1 * (c > 0)
    g["W1"] = np.einsum("ncijhw,nfhw->fcij", cols, dc) + reg * p["W1"]
    g["b1"] = dc.sum((0, 2, 3))
    return loss, g


def make(dtype, seed=0, blank=False):
    r = np.random.default_rng(seed)
    f = dtype
    p = {
        "W1": (0.1 * r.standard_normal((3, 2, 3, 3))).astype(f),
        "b1": (0.1 * r.standard_normal(3)).astype(f),
        "W2": (0.1 * r.standard_normal((27, 6))).astype(f),
        "b2": (0.1 * r.standard_normal(6)).astype(f),
        "W3": (0.1 * r.standard_normal((6, 4))).astype(f),
        "b3": (0.1 * r.standard_normal(4)).astype(f),
    }
    r = np.random.default_rng(200 + seed)
    X = r.standard_normal((3, 2, 6, 6)).astype(f)
    if blank:
        X[:, :, :, 3:] = 0
    return p, X, r.integers(0, 4, 3)


@pytest.mark.parametrize("blank", [False, True])
def test_a_right_float32_conv_net_through_a_closure_does_not_fail(blank):
    p, X, y = make(np.float32, 0, blank)
    report = backcheck.check(lambda q: net(p, X, y)[0], p, lambda q: net(p, X, y)[1])
    assert report.status != "fail", report


def test_a_wrong_rule_in_it_still_fails_where_it_is_wrong():
    p, X, y = make(np.float32, 0, False)

    def wrong(q):
        g = net(p, X, y)[1]
        g["W2"] = g["W2"] * np.float32(0.5)
        return g

    report = backcheck.check(lambda q: net(p, X, y)[0], p, wrong)
    assert report.status == "fail", report
    assert "q['W2']" in [lf.name for lf in report.leaves if lf.status == "fail"], report
