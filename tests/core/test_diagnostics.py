"""Diagnostics: randomness replayed, dead gradients named, second-order checks."""

import numpy as np
import pytest

import backcheck
from backcheck import BadInputError, NondeterministicError
from backcheck.randomness import FrozenRandom, find_generators

torch = pytest.importorskip("torch")

rng_global = np.random.default_rng(7)


def dropout_layer(x, w):
    mask = rng_global.random(x.shape) > 0.3  # draws a new mask at every call
    return (x * mask / 0.7) @ w, mask


def test_dropout_drawing_its_own_mask_is_replayed_and_a_backward_drawing_again_fails():
    def fwd(x, w):
        return dropout_layer(x, w)[0]

    def fwd_cached(x, w):
        out, mask = dropout_layer(x, w)
        return out, (x, w, mask)

    def bwd_cached(dout, cache):
        x, w, mask = cache
        return (dout @ w.T) * mask / 0.7, (x * mask / 0.7).T @ dout

    def bwd_drawing_again(dout, x, w):
        out, mask = dropout_layer(x, w)  # in training: the next draw, another mask than the forward's
        return (dout @ w.T) * mask / 0.7, (x * mask / 0.7).T @ dout

    def bwd_mask_missing(dout, cache):
        x, w, mask = cache
        return (dout @ w.T) / 0.7, (x * mask / 0.7).T @ dout

    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(6, 5)), rng.normal(size=(5, 3))
    with pytest.raises(NondeterministicError):
        backcheck.check_layer(fwd, bwd_drawing_again, (x, w), random="error")
    r = backcheck.check_layer(fwd_cached, bwd_cached, (x, w), cache=True)
    assert r.ok, r
    assert "replayed the same random stream" in r.notes[0] and "Generator" in r.notes[0]
    again = backcheck.check_layer(fwd, bwd_drawing_again, (x, w))
    assert again.status == "fail" and any("draws from the random stream itself" in n for n in again.notes), again
    bad = backcheck.check_layer(fwd_cached, bwd_mask_missing, (x, w), cache=True)
    assert bad.status == "fail" and bad.leaf("x").status == "fail" and bad.leaf("w").status == "pass"


def test_legacy_global_state_and_torch_generator_are_replayed():
    def legacy(x):
        return float(np.sum(x * (np.random.rand(*x.shape) > 0.5)))

    f = backcheck.freeze_rng(legacy)
    assert f(np.ones(8)) == f(np.ones(8))

    def with_torch(x):
        return float(np.sum(x * torch.rand(x.shape).numpy()))

    g = backcheck.freeze_rng(with_torch, torch=True)
    assert g(np.ones(8)) == g(np.ones(8))
    x = np.linspace(0, 1, 6)
    r = backcheck.check(
        lambda x: float(np.sum(x**2 * (np.random.rand(6) > 0.5))),
        x,
        lambda x: 2 * x * (np.random.rand(6) > 0.5),
        random="freeze",
    )
    assert r.ok and "numpy's global state" in r.notes[0]


def test_generators_are_found_in_closures_objects_and_partials():
    import functools

    a, b, c = (np.random.default_rng(i) for i in range(3))

    class Layer:
        def __init__(self):
            self.rng = b

        def __call__(self, x):
            return x * self.rng.random()

    def closure(x):
        return x * a.random()

    found = find_generators(closure, Layer(), functools.partial(lambda x, r: x * r.random(), r=c))
    assert {id(g) for g in found} == {id(a), id(b), id(c)}
    frozen = FrozenRandom([a])
    first = a.random()
    frozen.restore()
    assert a.random() == first


def test_parameters_receiving_no_gradient_are_named():
    p = {"W": np.ones((2, 2)), "b": np.array([0.5, 1.5])}
    r = backcheck.check(
        lambda p: float(np.sum(p["W"] ** 2) + np.sum(p["b"] ** 2)),
        p,
        lambda p: {"W": 2 * p["W"], "b": np.zeros(2)},
    )
    b = r.leaf("p['b']")
    assert b.status == "fail" and "receives a zero gradient everywhere" in b.note
    assert {e.status for e in b.worst} == {"dead"}


def test_hessian_vector_products():
    A = np.array([[2.0, 1.0, 0.0], [1.0, 3.0, -1.0], [0.0, -1.0, 1.5]])

    def grad(x):
        return A @ x + np.sin(x)

    def hvp(x, v):
        return A @ v + np.cos(x) * v

    def hvp_wrong(x, v):
        return A.T @ v - np.cos(x) * v

    x = np.array([0.3, -1.2, 2.0])
    assert backcheck.check_hvp(None, grad, hvp, x).ok
    assert backcheck.check_hvp(None, grad, hvp_wrong, x).status == "fail"


def test_grad_of_grad_on_a_tree():
    def grad(p):
        return {"a": 3 * p["a"] ** 2 * p["b"], "b": p["a"] ** 3}

    def hv(p, v):
        return {"a": 6 * p["a"] * p["b"] * v["a"] + 3 * p["a"] ** 2 * v["b"], "b": 3 * p["a"] ** 2 * v["a"]}

    p = {"a": np.array([0.5, -1.0]), "b": np.array([2.0, 0.3])}
    assert backcheck.check_grad_of_grad(grad, hv, p).ok
    wrong = backcheck.check_grad_of_grad(grad, lambda p, v: {**hv(p, v), "b": 0 * v["a"]}, p)
    assert wrong.leaf("p['b']").status == "fail"


def test_hvp_vector_comes_from_the_seed_an_int_a_generator_or_fresh_entropy():
    def grad(x):
        return np.sin(x)

    def vector(seed):
        seen = []

        def hvp(x, v):
            seen.append(np.array(v, copy=True))
            return np.cos(x) * v

        assert backcheck.check_hvp(None, grad, hvp, np.linspace(-1.0, 1.0, 4), seed=seed).ok
        return seen[0]

    assert np.array_equal(vector(3), vector(3)) and not np.array_equal(vector(3), vector(4))
    assert np.array_equal(vector(np.random.default_rng(0)), vector(np.random.default_rng(0)))
    assert vector(None).shape == (4,)
    with pytest.raises(BadInputError, match="seed"):
        backcheck.check_hvp(None, grad, lambda x, v: np.cos(x) * v, np.zeros(4), seed="abc")
