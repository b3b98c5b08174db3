"""The containers a check hands to the user's functions are its own: a function that edits them (adds, replaces or
deletes entries, appends to a list), returns normally or raises, changes neither the user's containers nor what
later calls receive. The arrays inside are restored bit for bit elsewhere (test_restore.py)."""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Any

import numpy as np
import pytest

import backcheck
from backcheck import UserFunctionError
from backcheck.tree import Tree

Pair = namedtuple("Pair", "w b")


def shape_of(obj: Any) -> Any:
    """A tree's containers: their types, keys and lengths, and the identity of every array (by id)."""
    if isinstance(obj, dict):
        return (type(obj), [(k, shape_of(v)) for k, v in obj.items()])
    if isinstance(obj, (list, tuple)):
        return (type(obj), [shape_of(v) for v in obj])
    return id(obj)


def params() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "layer": Pair(rng.normal(size=(2, 3)), [rng.normal(size=3)]),
        "extra": [rng.normal(size=2), {"s": rng.normal(size=2)}],
    }


def loss(p: Any) -> Any:
    return (
        np.sum(p["layer"].w ** 2)
        + np.sum(p["layer"].b[0] ** 2)
        + np.sum(p["extra"][0] ** 2)
        + np.sum(p["extra"][1]["s"] ** 2)
    )


def grad(p: Any) -> Any:
    return {
        "layer": Pair(2 * p["layer"].w, [2 * p["layer"].b[0]]),
        "extra": [2 * p["extra"][0], {"s": 2 * p["extra"][1]["s"]}],
    }


def vandal(p: Any) -> None:
    """Every kind of edit a function can make to the containers it receives (not to the arrays)."""
    p["seen"] = True
    p["layer"].b.append(np.zeros(3))
    p["extra"][1]["s2"] = p["extra"][1].pop("s")
    p["extra"][0] = np.ones(5)
    p["extra"].append("x")


def test_a_function_that_edits_every_container_leaves_the_users_tree_and_later_calls_alone() -> None:
    p = params()
    before = shape_of(p)
    seen = []

    def f(q: Any) -> Any:
        seen.append(shape_of(q))
        value = loss(q)
        vandal(q)
        return value

    def g(q: Any) -> Any:
        out = grad(q)
        vandal(q)
        return out

    report = backcheck.check(f, p, g)
    assert report.status == "pass", report
    assert shape_of(p) == before
    # every call was handed the tree as it was: the same keys and lengths, whatever earlier calls did to theirs
    assert len(seen) > 2 and all(s == seen[0] for s in seen)
    assert seen[0] == before  # the user's keys and lengths, around the user's own arrays (perturbed in place)


def test_a_function_that_raises_after_editing_its_dict_leaves_the_users_dict_alone() -> None:
    p = params()
    before = shape_of(p)

    def f(q: Any) -> Any:
        vandal(q)
        raise ValueError("boom")

    with pytest.raises(UserFunctionError):
        backcheck.check(f, p, grad)
    assert shape_of(p) == before


@pytest.mark.parametrize("kind", ["read-only array", "python float", "OrderedDict"])
def test_rebuilt_leaves_and_dict_kinds_are_handed_over_in_containers_of_their_own(kind: str) -> None:
    a = np.arange(1.0, 4.0)
    if kind == "read-only array":
        a.flags.writeable = False
    p: Any = {"a": a, "c": 1.5} if kind == "python float" else {"a": a}
    if kind == "OrderedDict":
        p = OrderedDict(p)
    before = shape_of(p)
    kinds = []

    def f(q: Any) -> Any:
        kinds.append(type(q))
        value = np.sum(q["a"] ** 2) + q.get("c", 0.0) ** 2
        q["a"] = q["a"] * 0
        q.pop("c", None)
        return value

    backcheck.numerical_grad(f, p)
    assert shape_of(p) == before
    assert set(kinds) == {type(p)}


def test_tree_current_is_new_on_every_call_and_keeps_the_keys_the_tree_was_built_with() -> None:
    p = params()
    tree = Tree(p, "p")
    first = tree.current()
    assert first is not p and first["layer"] is not p["layer"] and first["layer"].b is not p["layer"].b
    assert first["extra"][1] is not p["extra"][1]
    assert first["layer"].w is p["layer"].w  # the arrays are the user's own, perturbed in place
    vandal(first)
    p["late"] = np.zeros(2)  # an edit to the user's own dict after the tree was built is not the tree's
    second = tree.current()
    assert shape_of(second) == shape_of(params_like(p))
    np.testing.assert_array_equal(tree.pack(grad(second)), tree.pack(grad(tree.current())))


def params_like(p: dict[str, Any]) -> dict[str, Any]:
    """``p`` as the tree saw it when it was built (without the key added later)."""
    return {k: v for k, v in p.items() if k != "late"}


def test_a_gradient_is_packed_against_the_keys_the_tree_was_built_with() -> None:
    p = {"a": np.arange(1.0, 4.0)}
    tree = Tree(p, "p")
    p["b"] = np.zeros(2)  # edited after the tree was built (a function that writes into its input's dict)
    np.testing.assert_array_equal(tree.pack({"a": np.ones(3)}), np.ones(3))
    with pytest.raises(backcheck.GradientStructureError, match="unexpected 'b'"):
        tree.pack({"a": np.ones(3), "b": np.zeros(2)})
