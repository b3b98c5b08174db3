"""Finer steps end where they no longer resolve the element: at a kink of a float32 function, the steps below the
first difference are tried until one passes whose next finer step rounds by more than the element's size (a
float32 convolution's ReLU on a zero background: its finer passes had bounds 2, 70 and 2,000 times the element)."""

import numpy as np

import backcheck
import backcheck.refinement as refinement

N = 8  # the image's side


def _problem():
    g = np.random.default_rng(0)
    image = np.zeros((N, N))
    image[2:5, 3:6] = g.uniform(0, 1, (3, 3)).round(2)  # a blob of values in steps of 0.01 on zeros
    w1 = g.normal(size=(2, 3, 3)).astype(np.float32)
    w2 = g.normal(size=(2, N, N)).astype(np.float32)
    return image.astype(np.float32), w1, w2


def _conv(x, w):
    """'same' cross-correlation of one image with each of ``w``'s 3x3 kernels, zero-padded."""
    p = np.pad(x, 1)
    return np.stack(
        [sum(w[c, i, j] * p[i : i + N, j : j + N] for i in range(3) for j in range(3)) for c in range(len(w))]
    )


def _loss(w2):
    def f(params):
        x, w = params
        return np.float32((w2 * np.maximum(_conv(x, w), 0)).sum())

    return f


def _grad(w2, flipped=False):
    """The loss's gradient; ``flipped``: the input's through the kernels turned by 180 degrees (a convolution's
    rule used for a cross-correlation)."""

    def grad(params):
        x, w = params
        d = (w2 * (_conv(x, w) > 0)).astype(np.float32)
        p = np.pad(x, 1)
        gx, gw = np.zeros((N + 2, N + 2), np.float32), np.zeros_like(w)
        for c in range(len(w)):
            for i in range(3):
                for j in range(3):
                    k = w[c, 2 - i, 2 - j] if flipped else w[c, i, j]
                    gx[i : i + N, j : j + N] += k * d[c]
                    gw[c, i, j] = (d[c] * p[i : i + N, j : j + N]).sum()
        return gx[1:-1, 1:-1], gw

    return grad


def _summary(report):
    return report.status, [(leaf.name, leaf.n_mismatch, leaf.n_kinks) for leaf in report.leaves]


def test_finer_steps_stop_where_they_round_by_more_than_the_element(monkeypatch):
    x, w1, w2 = _problem()
    kept = (x.copy(), w1.copy())
    cut = backcheck.check(_loss(w2), (x, w1), _grad(w2))
    assert cut.status == "pass", cut
    assert np.array_equal(x, kept[0]) and np.array_equal(w1, kept[1])
    monkeypatch.setattr(refinement, "UNRESOLVED", np.inf)  # every fraction tried, as before the cut
    every = backcheck.check(_loss(w2), (x, w1), _grad(w2))
    assert _summary(cut) == _summary(every)
    assert cut.n_evals <= 0.9 * every.n_evals  # (a few hundred of the kinks' evaluations saved)


def test_a_flipped_kernel_still_fails_there():
    x, w1, w2 = _problem()
    wrong = backcheck.check(_loss(w2), (x, w1), _grad(w2, flipped=True))
    assert wrong.status == "fail", wrong
    assert wrong.leaves[0].n_mismatch > 0 and wrong.leaves[1].n_mismatch == 0
