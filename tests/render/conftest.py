"""Real reports for the renderer tests, built once per session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import backcheck
from backcheck.report import Report
from backcheck.zoo import get


def _bn_bug(curves: bool) -> Report:
    bn = get("batchnorm_train")
    x = tuple(bn.make_inputs(np.random.default_rng(0), np.float64).values())
    bug = next(b for b in bn.bugs if b.name == "missing_mean_term")
    return backcheck.check_layer(bn.forward, bug.backward, x, curves=curves)


@pytest.fixture(scope="session")
def failing() -> Report:
    """A batch-norm backward pass with a classic bug in dx; curves recorded."""
    return _bn_bug(curves=True)


@pytest.fixture(scope="session")
def passing32() -> Report:
    """A correct affine layer in float32, with curves."""
    layer = get("affine")
    x = tuple(layer.make_inputs(np.random.default_rng(1), np.float32).values())
    return backcheck.check_layer(layer.forward, layer.backward, x, curves=True)


@pytest.fixture(scope="session")
def kinked() -> Report:
    """A ReLU network at its kinks: passes, with kinks listed."""
    mlp = get("mlp_relu")
    x = tuple(mlp.kinks(np.random.default_rng(0), np.float32).values())
    return backcheck.check_layer(mlp.forward, mlp.backward, x)


@pytest.fixture(scope="session")
def odd() -> Report:
    """A loss with a 0-d parameter, a sparse sample (unchecked elements are NaN) and a hostile name."""
    params = {"W<script>": np.random.default_rng(2).normal(size=(30, 20)), "s": np.float64(0.5)}

    def loss(p: dict) -> float:
        return float(np.sum(np.tanh(p["W<script>"]) * p["s"]))

    def grad(p: dict) -> dict:
        return {"W<script>": (1 - np.tanh(p["W<script>"]) ** 2) * p["s"], "s": np.sum(np.tanh(p["W<script>"]))}

    return backcheck.check(loss, params, grad, strategy="sparse", samples=40, seed=3)


@pytest.fixture(scope="session")
def mutating() -> Report:
    """A backward pass that writes into its input x: a mutation finding."""

    def forward(x: np.ndarray) -> np.ndarray:
        return 2.0 * x

    def backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
        x *= 2.0
        return 2.0 * dout

    return backcheck.check_layer(forward, backward, (np.linspace(-1, 1, 6).reshape(2, 3),))


@pytest.fixture(scope="session")
def skipped() -> Report:
    """A layer whose backward returns None for one float input."""

    def forward(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return x * y

    def backward(dout: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple:
        return dout * y, None

    rng = np.random.default_rng(4)
    return backcheck.check_layer(forward, backward, (rng.normal(size=3), rng.normal(size=3)))


@pytest.fixture(scope="session")
def all_reports(failing: Report, passing32: Report, kinked: Report, odd: Report, mutating: Report,
                skipped: Report) -> list[Report]:
    return [failing, passing32, kinked, odd, mutating, skipped]


@pytest.fixture(scope="session")
def tiny_gradient() -> Report:
    """A correct gradient with one element near zero: a pass whose max relative error is large."""
    x = np.array([1e-10, 0.5, 1.0, 2.0])
    return backcheck.check(lambda x: np.sum(x**2) + 3.0, x, lambda x: 2 * x)


@pytest.fixture(scope="session")
def forward_mutates() -> Report:
    """A forward pass that zeroes a row of its input: a mutation finding and mismatching elements."""

    def forward(x: np.ndarray) -> np.ndarray:
        x[0] = 0.0
        return 2.0 * x

    def backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
        return 2.0 * dout

    return backcheck.check_layer(forward, backward, (np.linspace(-1, 1, 6).reshape(2, 3),))


@pytest.fixture(scope="session")
def kinked_curves() -> Report:
    """The ReLU network at its kinks, with error-versus-step curves."""
    mlp = get("mlp_relu")
    x = tuple(mlp.kinks(np.random.default_rng(0), np.float32).values())
    return backcheck.check_layer(mlp.forward, mlp.backward, x, curves=True)


@pytest.fixture(scope="session")
def long_names() -> Report:
    """Parameters with long names (titles must be cut to fit their plot), one of them wrong, with curves."""
    rng = np.random.default_rng(5)
    params = {"encoder.layers.0.self_attention.query_projection.weight": rng.normal(size=(3, 70)),
              "encoder.layers.0.self_attention.query_projection.bias": rng.normal(size=(2, 1))}

    def loss(p: dict) -> float:
        return float(sum(np.sum(np.sin(v)) for v in p.values()))

    def grad(p: dict) -> dict:
        g = {k: np.cos(v) for k, v in p.items()}
        g["encoder.layers.0.self_attention.query_projection.weight"][1, 5] += 1e-3
        return g

    return backcheck.check(loss, params, grad, curves=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by playwright (no browser download)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="session")
def projected() -> Report:
    """A correct gradient of 10,000 elements checked by random directions: a pass whose floor is in a note."""
    x = np.random.default_rng(6).normal(size=(100, 100))
    return backcheck.check(lambda x: np.sum(np.tanh(x)), x, lambda x: 1 - np.tanh(x) ** 2, strategy="projected")
