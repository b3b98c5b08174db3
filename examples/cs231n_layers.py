"""A CS231n-style ``layers.py``: forward passes that return ``(out, cache)``, backward passes that take
``(dout, cache)``, and gradient cases for the ``backcheck`` command.

    backcheck check examples/cs231n_layers.py              # every case: all pass but one (a planted bug)
    backcheck check examples/cs231n_layers.py -k relu      # one case
    backcheck check examples/cs231n_layers.py --html report.html

``batchnorm_backward_buggy`` is the classic mistake of forgetting that the batch mean depends on ``x``;
backcheck names the wrong elements of ``dx`` and leaves ``dgamma`` and ``dbeta`` alone.
"""

import numpy as np

import backcheck


def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    return dout * (cache > 0)


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    xhat = (x - mu) / np.sqrt(var + eps)
    return gamma * xhat + beta, (xhat, gamma, np.sqrt(var + eps))


def batchnorm_backward(dout, cache):
    xhat, gamma, std = cache
    n = dout.shape[0]
    dxhat = dout * gamma
    dx = (n * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0)) / (n * std)
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def batchnorm_backward_buggy(dout, cache):
    xhat, gamma, std = cache
    n = dout.shape[0]
    dxhat = dout * gamma
    dx = (n * dxhat - xhat * (dxhat * xhat).sum(axis=0)) / (n * std)  # the mean term is missing
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def softmax_loss(x, y):
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = x.shape[0]
    loss = -log_probs[np.arange(n), y].mean()
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1
    return loss, dx / n


rng = np.random.default_rng(0)


@backcheck.case(forward="affine_forward", backward="affine_backward", cache=True)
def affine():
    return rng.normal(size=(4, 2, 3)), rng.normal(size=(6, 5)), rng.normal(size=5)


@backcheck.case(forward="relu_forward", backward="relu_backward", cache=True)
def relu_at_kinks():
    x = rng.normal(size=(4, 5))
    x[0, :3] = 0.0  # exactly at the kink: backcheck recognizes it instead of crying wolf
    return x


@backcheck.case(forward="batchnorm_forward", backward="batchnorm_backward", cache=True)
def batchnorm():
    return rng.normal(size=(8, 4)), rng.normal(size=4), rng.normal(size=4)


@backcheck.case(forward="batchnorm_forward", backward="batchnorm_backward_buggy", cache=True)
def batchnorm_with_the_classic_bug():
    return rng.normal(size=(8, 4)), rng.normal(size=4), rng.normal(size=4)


@backcheck.case
def softmax_loss_gradient():
    x, y = rng.normal(size=(5, 4)), rng.integers(0, 4, size=5)
    return {"f": lambda x: softmax_loss(x, y)[0], "params": x, "grad": lambda x: softmax_loss(x, y)[1]}
