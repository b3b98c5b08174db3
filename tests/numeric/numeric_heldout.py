"""Smooth test functions that ``benchmarks/numeric.py`` does not use: the error estimates of ``numerical_grad``
are checked on them, so that what the benchmark shows is no artefact of its own 18 functions."""

import numpy as np


def _xent(x):
    z = x - np.max(x)
    return np.log(np.sum(np.exp(z))) - z[1]


def _xent_grad(x):
    e = np.exp(x - np.max(x))
    g = e / np.sum(e)
    g[1] -= 1
    return g


def _coupled(x):
    return np.sum(x[:-1] ** 2 * x[1:]) + np.sum(x)


def _coupled_grad(x):
    g = np.ones_like(x)
    g[:-1] += 2 * x[:-1] * x[1:]
    g[1:] += x[:-1] ** 2
    return g


#: name -> (f, exact gradient); every one smooth at every point
HELD_OUT = {
    "chebyshev6": (
        lambda x: np.sum(32 * x**6 - 48 * x**4 + 18 * x**2 - 1) / 10,
        lambda x: (192 * x**5 - 192 * x**3 + 36 * x) / 10,
    ),
    "coupled cubic": (_coupled, _coupled_grad),
    "log cosh": (lambda x: np.sum(np.log(np.cosh(x))), np.tanh),
    "swish": (
        lambda x: np.sum(x / (1 + np.exp(-x))),
        lambda x: 1 / (1 + np.exp(-x)) + x * np.exp(-x) / (1 + np.exp(-x)) ** 2,
    ),
    "arctan": (lambda x: np.sum(np.arctan(2 * x)), lambda x: 2 / (1 + 4 * x**2)),
    "gaussian bump": (
        lambda x: np.exp(-np.sum(x**2) / x.size),
        lambda x: -2 * x / x.size * np.exp(-np.sum(x**2) / x.size),
    ),
    "cross-entropy": (_xent, _xent_grad),
    "sin cos chain": (
        lambda x: np.sum(np.sin(x[:-1]) * np.cos(x[1:])),
        lambda x: np.concatenate([np.cos(x[:-1]) * np.cos(x[1:]), [0]])
        - np.concatenate([[0], np.sin(x[:-1]) * np.sin(x[1:])]),
    ),
}
