"""Module-level functions for the executor tests (workers import them by name)."""

import os

import numpy as np

A = np.random.default_rng(1).normal(size=300)


def loss(x):
    return float(np.sum(np.tanh(A * x)))


def grad(x):
    return A * (1 - np.tanh(A * x) ** 2)


def grad_one_wrong(x):
    g = grad(x).copy()
    g[17] += 0.5
    return g


def dies_in_worker(x):
    if os.getpid() != int(os.environ.get("BACKCHECK_TEST_PARENT", "0")):
        os._exit(3)  # a worker that crashes hard
    return loss(x)
