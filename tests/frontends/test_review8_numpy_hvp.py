"""check_hvp: a zero vector v, an hvp that writes into v, and a misspelt option."""

import numpy as np
import pytest

import backcheck
from backcheck.errors import ArgumentError, BadInputError, GradientStructureError

X = np.array([0.3, -1.2, 2.0, 0.7])


def grad(p):
    return -np.sin(p)


def test_a_zero_v_is_refused_naming_v():
    with pytest.raises(BadInputError) as info:
        backcheck.check_hvp(None, grad, lambda p, v: 7 * v, X, v=np.zeros(4))
    assert "v" in info.value.message and "zero" in info.value.message
    assert "random" in info.value.hint


def test_a_zero_v_in_a_tree_is_refused_and_a_partly_zero_one_is_not():
    params = {"a": X, "b": X[:2].copy()}

    def g(p):
        return {"a": -np.sin(p["a"]), "b": 3 * p["b"] ** 2}

    def hvp(p, v):
        return {"a": -np.cos(p["a"]) * v["a"], "b": 6 * p["b"] * v["b"]}

    with pytest.raises(BadInputError):
        backcheck.check_hvp(None, g, hvp, params, v={"a": np.zeros(4), "b": np.zeros(2)})
    assert backcheck.check_hvp(None, g, hvp, params, v={"a": np.ones(4), "b": np.zeros(2)}).ok


@pytest.mark.parametrize("given", [True, False], ids=["v given", "default v"])
def test_an_hvp_that_writes_into_v_is_a_mutation_finding_and_the_callers_v_is_unchanged(given):
    v = np.linspace(-1.0, 1.5, 4)
    v0 = v.copy()

    def hvp(p, v):
        v *= -np.cos(p)  # in place
        return v

    r = backcheck.check_hvp(None, grad, hvp, X, **({"v": v} if given else {}))
    assert r.status == "fail" and [f.kind for f in r.findings] == ["mutation"], r
    assert "hvp" in r.findings[0].message and " v" in r.findings[0].message
    assert np.array_equal(v, v0)
    assert all(lf.status == "pass" for lf in r.leaves), r  # the product itself, from a private copy, is right


def test_a_correct_hvp_has_no_finding():
    r = backcheck.check_hvp(None, grad, lambda p, v: -np.cos(p) * v, X, v=np.linspace(-1.0, 1.5, 4))
    assert r.ok and not r.findings, r


def test_a_misspelt_option_names_check_hvp_and_its_options():
    with pytest.raises(ArgumentError) as info:
        backcheck.check_hvp(None, grad, lambda p, v: -np.cos(p) * v, X, stratgy="full")
    assert "check_hvp" in info.value.message and "stratgy" in info.value.message
    assert "check_hvp(" in info.value.hint and "strategy" in info.value.hint and "check(f" not in info.value.hint


def test_a_misspelt_option_of_check_grad_of_grad_names_it():
    with pytest.raises(ArgumentError) as info:
        backcheck.check_grad_of_grad(grad, lambda p, v: -np.cos(p) * v, X, atoll=1e-3)
    assert "check_grad_of_grad" in info.value.message and "atol" in info.value.hint
    assert backcheck.check_grad_of_grad(grad, lambda p, v: -np.cos(p) * v, X, v=np.ones(4), seed=3).ok


def test_an_hvp_of_the_wrong_shape_is_named_and_so_is_the_point():
    # (the message said "the gradient for p": neither the function under test nor the user's own name)
    def hvp(w, v):
        return np.ones(5)

    with pytest.raises(GradientStructureError) as info:
        backcheck.check_hvp(None, grad, hvp, X)
    assert "product hvp(w, v) for w has shape (5,)" in info.value.message
    wrong = backcheck.check_hvp(None, grad, lambda w, v: -np.cos(w) * v * (1 + (np.arange(4) == 2)), X)
    assert wrong.status == "fail" and [e.name for e in wrong.mismatches] == ["w[2]"]
