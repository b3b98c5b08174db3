"""Malformed and extreme input to the numpy entry points: a typed error naming the culprit, or a sensible
verdict; never a bare numpy/Python exception; the user's arrays bitwise unchanged, even when their function
raises mid-check.

One row per input here; Hypothesis over layouts, values, junk returns and options, and the known escapes whose
fix lies outside the input boundary, in test_adversarial_fuzz.py.
"""

from __future__ import annotations

import atexit
import os
import re
import tempfile
import warnings
from typing import Any

import numpy as np
import pytest

import backcheck
from backcheck import (
    BackcheckError,
    BadInputError,
    GradientMismatch,
    GradientStructureError,
    NonFiniteError,
    NotScalarError,
    ParamsError,
    UserFunctionError,
)


# -- helpers ---------------------------------------------------------------------------------------------------
def snapshot(obj: Any) -> Any:
    """Everything of a tree the check must leave alone: container types and keys, and for every array its
    type, dtype, shape, strides, flags and bytes."""
    if isinstance(obj, np.ndarray):
        raw = np.ascontiguousarray(obj.view(np.ndarray)).view(np.uint8).tobytes() if obj.dtype != object else None
        return (type(obj), obj.dtype, obj.shape, obj.strides, obj.flags.writeable, raw)
    if isinstance(obj, dict):
        return (type(obj), [(k, snapshot(v)) for k, v in obj.items()])
    if isinstance(obj, (list, tuple)):
        return (type(obj), [snapshot(v) for v in obj])
    return (type(obj), repr(obj))


def outcome(call: Any, *watched: Any) -> Any:
    """Run ``call``; return its report or the typed error it raised. Anything else fails the test, and so does
    a change to any watched tree."""
    before = [snapshot(w) for w in watched]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = call()
    except (BackcheckError, GradientMismatch) as exc:
        result = exc
    after = [snapshot(w) for w in watched]
    assert after == before, "the user's input was changed"
    return result


def typed(call: Any, error: type[BaseException], *culprits: str, watched: tuple[Any, ...] = ()) -> BackcheckError:
    """``call`` raises ``error`` whose message names every culprit and gives a hint."""
    exc = outcome(call, *watched)
    assert isinstance(exc, error), f"expected {error.__name__}, got {exc!r}"
    assert isinstance(exc, BackcheckError)
    for culprit in culprits:
        assert culprit in str(exc), f"{culprit!r} not named in: {exc}"
    assert exc.hint, f"no hint in: {exc}"
    return exc


def X() -> np.ndarray:
    return np.arange(1.0, 5.0)


def sq(p: Any) -> Any:
    return np.sum(p**2)


def dsq(p: Any) -> Any:
    return 2 * p


# -- parameters ------------------------------------------------------------------------------------------------
def _structured() -> np.ndarray:
    return np.zeros(3, dtype=[("a", "f8"), ("b", "f8")])


REFUSED_PARAMS = [
    ("python int", lambda: 3, "integer"),
    ("python complex", lambda: 1 + 2j, "complex"),
    ("None", lambda: None, "None"),
    ("str", lambda: "abc", "str"),
    ("set", lambda: {1.0}, "set"),
    ("empty dict", lambda: {}, "no arrays"),
    ("empty list", lambda: [], "no arrays"),
    ("int64", lambda: np.arange(3), "int64"),
    ("uint8", lambda: np.arange(3, dtype=np.uint8), "uint8"),
    ("bool", lambda: np.ones(3, bool), "bool"),
    ("complex128", lambda: np.ones(3, complex), "complex128"),
    ("object", lambda: np.ones(3, object), "object"),
    ("datetime", lambda: np.array(["2020-01-01"] * 3, dtype="datetime64[s]"), "datetime64"),
    ("timedelta", lambda: np.ones(3, dtype="timedelta64[s]"), "timedelta64"),
    ("unicode", lambda: np.array(["a", "b"]), "<U1"),
    ("structured", _structured, "dtype"),
    ("masked", lambda: np.ma.array([1.0, 2.0], mask=[0, 1]), "masked"),
    ("int leaf in a list", lambda: [np.ones(2), np.arange(2)], "p[1]"),
    ("None leaf in a dict", lambda: {"w": np.ones(2), "b": None}, "p['b']"),
    ("nested bool leaf", lambda: {"a": {"b": [np.ones(2), True]}}, "p['a']['b'][1]"),
]


@pytest.mark.parametrize("make, culprit", [r[1:] for r in REFUSED_PARAMS], ids=[r[0] for r in REFUSED_PARAMS])
def test_parameters_that_cannot_be_differentiated_are_refused_by_name(make: Any, culprit: str) -> None:
    params = make()
    typed(lambda: backcheck.check(lambda p: 0.0, params, lambda p: p), ParamsError, culprit, watched=(params,))


def test_the_same_memory_twice_is_refused_naming_both() -> None:
    x = np.arange(1.0, 7.0)
    params = [x[:4], x[2:]]
    typed(
        lambda: backcheck.check(lambda p: np.sum(p[0] ** 2) + np.sum(p[1] ** 2), params, lambda p: [2 * a for a in p]),
        ParamsError,
        "p[0]",
        "p[1]",
        watched=(x,),
    )


def _matrix() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.matrix([[1.0, 2.0], [3.0, 4.0]])


def _layouts() -> list[tuple[str, Any]]:
    base = np.arange(1.0, 13.0).reshape(3, 4)
    fd, path = tempfile.mkstemp(prefix="backcheck-tests-memmap-")
    os.close(fd)
    atexit.register(os.remove, path)  # (made at collection, in every process that collects this module)
    mm = np.memmap(path, dtype="f8", mode="w+", shape=(4,))
    mm[:] = [1.0, 2.0, 3.0, 4.0]
    ro = np.arange(1.0, 5.0)
    ro.flags.writeable = False

    class Sub(np.ndarray):
        pass

    return [
        ("0-d", np.array(1.5)),
        ("numpy scalar", np.float64(1.5)),
        ("python float", 1.5),
        ("float32 scalar", np.float32(1.5)),
        ("read-only", ro),
        ("non-contiguous view", base[:, ::2]),
        ("negative strides", base[::-1, ::-1]),
        ("Fortran order", np.asfortranarray(base)),
        ("zero-stride broadcast (read-only)", np.broadcast_to(np.arange(1.0, 4.0), (2, 3))),
        ("memmap", mm),
        ("subclass", np.arange(1.0, 4.0).view(Sub)),
        ("np.matrix", _matrix()),
        ("float32", np.arange(1.0, 5.0, dtype=np.float32)),
        ("list of arrays", [np.ones(2), np.full(3, 2.0)]),
        ("tuple of arrays", (np.ones(2), np.full(3, 2.0))),
        ("list of floats", [1.0, 2.0]),
        ("nested dict and list", {"a": {"b": np.ones(2)}, "c": [np.full(3, 0.5), 2.0]}),
        ("integer dict keys", {1: np.ones(2), (2, 3): np.full(2, 3.0)}),
        ("namedtuple", __import__("collections").namedtuple("NT", "a b")(np.ones(2), np.full(2, 3.0))),
        ("tiny values", np.array([1e-300, -1e-310, 5e-324])),
        ("zeros", np.zeros(3)),
    ]


def _tree_sq(p: Any) -> float:
    leaves = [a for _, a in backcheck.containers.flatten(p)]
    return float(sum(np.sum(np.multiply(np.asarray(a), np.asarray(a))) for a in leaves))


def _tree_dsq(p: Any) -> Any:
    return backcheck.containers.map_leaves(lambda a: 2 * a, p)


@pytest.mark.parametrize("params", [p for _, p in _layouts()], ids=[n for n, _ in _layouts()])
def test_every_layout_of_float_parameters_is_checked_and_left_unchanged(params: Any) -> None:
    report = outcome(lambda: backcheck.check(_tree_sq, params, _tree_dsq), params)
    assert isinstance(report, backcheck.Report)
    # a gradient of about 1e-300 is below what differences see: inconclusive, said so; never a fail
    values = np.concatenate([np.ravel(a) for _, a in backcheck.containers.flatten(params)])
    tiny = bool(np.any(values != 0)) and float(np.max(np.abs(values))) < 1e-200
    assert report.status == ("inconclusive" if tiny else "pass"), str(report)
    wrong = outcome(
        lambda: backcheck.check(_tree_sq, params, lambda p: backcheck.containers.map_leaves(lambda a: 3 * a + 1, p))
    )
    assert wrong.status == "fail", str(wrong)


def test_an_empty_array_beside_a_full_one_is_judged_on_the_full_one() -> None:
    params = [np.zeros((3, 0)), np.arange(1.0, 3.0)]
    report = outcome(lambda: backcheck.check(lambda p: np.sum(p[1] ** 2), params, lambda p: [p[0], 3 * p[1]]), params)
    assert report.status == "fail"
    assert [leaf.status for leaf in report.leaves][1] == "fail"


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 1e308])
def test_non_finite_loss_at_the_point_is_named(value: float) -> None:
    x = np.array([value, 1.0, 2.0])
    typed(lambda: backcheck.check(lambda p: np.sum(p**2), x, dsq), NonFiniteError, "original point", watched=(x,))


def test_a_loss_of_1e300_is_never_a_false_pass_or_fail() -> None:
    x = np.array([1e300, 1.0])
    report = outcome(lambda: backcheck.check(lambda p: np.sum(3 * p), x, lambda p: 3 * np.ones_like(p)), x)
    assert report.status in ("pass", "inconclusive")
    wrong = outcome(lambda: backcheck.check(lambda p: np.sum(3 * p), x, lambda p: 4 * np.ones_like(p)), x)
    assert wrong.status in ("fail", "inconclusive")


# -- what f returns ----------------------------------------------------------------------------------------------
BAD_LOSSES = [
    ("None", lambda p: None, NotScalarError, "dtype object"),
    ("str", lambda p: "1.5", NotScalarError, "<U3"),
    ("bytes", lambda p: b"1", NotScalarError, "S1"),
    ("list", lambda p: [1.0, 2.0], NotScalarError, "shape (2,)"),
    ("complex", lambda p: complex(np.sum(p), 1.0), NotScalarError, "complex128"),
    ("complex without imaginary part", lambda p: np.complex128(np.sum(p)), NotScalarError, "complex128"),
    ("array of size > 1", lambda p: p**2, NotScalarError, "shape (4,)"),
    ("empty array", lambda p: np.zeros(0), NotScalarError, "shape (0,)"),
    ("bool", lambda p: True, NotScalarError, "bool"),
    ("dict", lambda p: {"loss": 1.0}, NotScalarError, "object"),
    ("generator", lambda p: (v for v in [1.0]), NotScalarError, "object"),
    ("datetime", lambda p: np.datetime64("2020-01-01"), NotScalarError, "datetime64"),
    ("structured", lambda p: np.zeros(1, dtype=[("a", "f8")]), NotScalarError, "dtype"),
    ("value and aux", lambda p: (np.sum(p), {"aux": 1}), NotScalarError, "shape (2,)"),
    ("int too large for numpy", lambda p: 10**400, NotScalarError, "object"),
    ("NaN", lambda p: np.nan, NonFiniteError, "nan"),
    ("inf", lambda p: np.inf, NonFiniteError, "inf"),
]


@pytest.mark.parametrize("f, error, culprit", [r[1:] for r in BAD_LOSSES], ids=[r[0] for r in BAD_LOSSES])
def test_a_loss_that_is_not_one_real_number_is_named(f: Any, error: type, culprit: str) -> None:
    x = X()
    typed(lambda: backcheck.check(f, x, dsq), error, culprit, watched=(x,))
    typed(lambda: backcheck.numerical_grad(f, x), error, culprit, watched=(x,))


@pytest.mark.parametrize("loss", [3, np.int64(3), np.uint64(3), np.int8(-1)], ids=["int", "int64", "uint64", "int8"])
def test_an_integer_loss_is_explained_not_a_numpy_error(loss: Any) -> None:
    x = X()
    report = outcome(lambda: backcheck.check(lambda p: loss, x, dsq), x)
    assert report.status == "fail"  # the gradient of a constant is 0, not 2x
    assert any("integer" in note for note in report.notes), report.notes
    assert outcome(lambda: backcheck.check(lambda p: loss, x, lambda p: 0 * p), x).status != "fail"
    assert np.array_equal(outcome(lambda: backcheck.numerical_grad(lambda p: loss, x), x), np.zeros(4))


def test_a_loss_whose_dtype_changes_every_call_is_still_judged() -> None:
    calls = {"n": 0}

    def f(p: np.ndarray) -> Any:
        calls["n"] += 1
        return np.float32(np.sum(p**2)) if calls["n"] % 2 else np.float64(np.sum(p**2))

    x = X()
    assert outcome(lambda: backcheck.check(f, x, dsq), x).status != "fail"
    assert outcome(lambda: backcheck.check(f, x, lambda p: 3 * p), x).status == "fail"


def test_a_loss_that_turns_into_junk_midway_is_named() -> None:
    calls = {"n": 0}

    def f(p: np.ndarray) -> Any:
        calls["n"] += 1
        return np.sum(p**2) if calls["n"] < 4 else p**2

    x = X()
    typed(lambda: backcheck.check(f, x, dsq), NotScalarError, "shape (4,)", watched=(x,))


# -- a function that raises or writes ------------------------------------------------------------------------------
def _raising(on_call: int, exc: type[BaseException] = ValueError, write: bool = False) -> Any:
    calls = {"n": 0}

    def f(p: np.ndarray) -> Any:
        calls["n"] += 1
        if write:
            p[...] = 7.0
        if calls["n"] == on_call:
            raise exc("boom")
        return np.sum(p**2)

    return f


@pytest.mark.parametrize("on_call", [1, 2, 3, 5, 9])
@pytest.mark.parametrize("write", [False, True], ids=["pure", "writes first"])
@pytest.mark.parametrize("exc", [ValueError, ZeroDivisionError, MemoryError, RecursionError, StopIteration])
def test_a_function_raising_midway_is_chained_and_the_point_restored(on_call: int, write: bool, exc: type) -> None:
    x = X()
    err = typed(lambda: backcheck.check(_raising(on_call, exc, write), x, dsq), UserFunctionError, "f", watched=(x,))
    assert isinstance(err.__cause__, exc)
    y = X()
    inner = _raising(on_call, exc, write)

    def forward(a: np.ndarray) -> Any:
        return inner(a) * a

    err = typed(
        lambda: backcheck.check_layer(forward, lambda d, a: d, (y,)), UserFunctionError, "forward", watched=(y,)
    )
    assert isinstance(err.__cause__, exc)


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_midway_propagates_with_the_point_restored(exc: type) -> None:
    x = X()
    before = snapshot(x)
    with pytest.raises(exc):
        backcheck.check(_raising(3, exc, write=True), x, dsq)
    assert snapshot(x) == before


def test_a_gradient_that_writes_then_raises_is_named_and_restored() -> None:
    def grad(p: np.ndarray) -> Any:
        p[0] = 5.0
        raise ValueError("grad failed")

    x = X()
    typed(lambda: backcheck.check(sq, x, grad), UserFunctionError, "grad", watched=(x,))


def test_a_function_writing_into_its_input_fails_with_the_point_restored() -> None:
    def f(p: np.ndarray) -> Any:
        p[0] += 1.0
        return np.sum(p**2)

    x = X()
    report = outcome(lambda: backcheck.check(f, x, dsq), x)
    assert report.status == "fail"
    assert [finding.kind for finding in report.findings] == ["mutation"]


# -- what grad returns ---------------------------------------------------------------------------------------------
BAD_GRADIENTS = [
    ("wrong shape", lambda p: np.ones(5), "(5,)"),
    ("scalar", lambda p: 2.0, "shape ()"),
    ("list", lambda p: list(2 * p), "list"),
    ("tuple", lambda p: tuple(2 * p), "tuple"),
    ("None", lambda p: None, "None"),
    ("ints", lambda p: (2 * p).astype(int), "int64"),
    ("bools", lambda p: p > 0, "bool"),
    ("generator", lambda p: (v for v in 2 * p), "generator"),
    ("str", lambda p: "abc", "str"),
    ("complex", lambda p: (2 * p).astype(complex), "complex128"),
    ("object", lambda p: (2 * p).astype(object), "object"),
    ("dict", lambda p: {"p": 2 * p}, "dict"),
    ("empty", lambda p: np.zeros(0), "(0,)"),
    ("datetime", lambda p: np.array(["2020-01-01"] * 4, dtype="datetime64[D]"), "datetime64"),
]


@pytest.mark.parametrize("grad, culprit", [r[1:] for r in BAD_GRADIENTS], ids=[r[0] for r in BAD_GRADIENTS])
def test_a_gradient_of_the_wrong_kind_names_the_leaf(grad: Any, culprit: str) -> None:
    x = X()
    typed(lambda: backcheck.check(sq, x, grad), GradientStructureError, "p", culprit, watched=(x,))
    typed(lambda: backcheck.check(sq, x, grad(X())), GradientStructureError, "p", culprit, watched=(x,))


@pytest.mark.parametrize(
    "grad", [lambda p: (2 * p)[:, None], lambda p: np.matrix(2 * p)], ids=["column for a vector", "np.matrix"]
)
def test_a_gradient_in_a_shape_but_for_axes_of_size_1_is_accepted_with_a_note(grad: Any) -> None:
    # the same elements in the same order (a bias stored as (1, D), its gradient summed to (D,)): no structure
    # error, a note; its values are judged as any gradient's
    x = X()
    report = outcome(lambda: backcheck.check(sq, x, grad), x)
    assert report.ok and any("but for axes of size 1" in n for n in report.notes), report
    wrong = outcome(lambda: backcheck.check(sq, x, lambda p: 1.01 * grad(p)), x)
    assert wrong.status == "fail"


def test_a_bias_stored_as_a_row_takes_its_summed_gradient() -> None:
    rng = np.random.default_rng(4)
    X_, W, b = rng.normal(size=(5, 3)), rng.normal(size=(3, 2)), rng.normal(size=(1, 2))

    def loss(p):
        return float(np.sum(np.tanh(X_ @ p["W"] + p["b"])))

    def grad(p, first_row_only=False):
        d = 1 - np.tanh(X_ @ p["W"] + p["b"]) ** 2
        return {"W": X_.T @ d, "b": d[0] if first_row_only else d.sum(0)}  # (2,) for a (1, 2) parameter

    params = {"W": W, "b": b}
    report = outcome(lambda: backcheck.check(loss, params, grad), params)
    assert report.ok and any("p['b'] has shape (2,)" in n for n in report.notes), report
    assert outcome(lambda: backcheck.check(loss, params, lambda p: grad(p, True)), params).status == "fail"


TREE_GRADIENTS = [
    ("missing key", lambda p: {"a": 2 * p["a"]}, "missing 'b'"),
    ("extra key", lambda p: {"a": 2 * p["a"], "b": 2 * p["b"], "c": 1.0}, "unexpected 'c'"),
    ("list for a dict", lambda p: [2 * p["a"], 2 * p["b"]], "list"),
    ("a dict one level too deep", lambda p: {"a": {"x": 2 * p["a"]}, "b": 2 * p["b"]}, "p['a']"),
    ("None leaf", lambda p: {"a": 2 * p["a"], "b": None}, "p['b']"),
    ("renamed keys", lambda p: {"A": 2 * p["a"], "B": 2 * p["b"]}, "unexpected 'A', 'B'"),
]


@pytest.mark.parametrize("grad, culprit", [r[1:] for r in TREE_GRADIENTS], ids=[r[0] for r in TREE_GRADIENTS])
def test_a_gradient_tree_of_the_wrong_structure_names_where(grad: Any, culprit: str) -> None:
    params = {"a": X(), "b": X()}

    def f(p: Any) -> Any:
        return np.sum(p["a"] ** 2) + np.sum(p["b"] ** 2)

    typed(lambda: backcheck.check(f, params, grad), GradientStructureError, culprit, watched=(params,))


@pytest.mark.parametrize(
    "grad",
    [lambda p: np.full(4, np.nan), lambda p: np.full(4, np.inf), lambda p: 1e300 * np.ones(4)],
    ids=["NaN", "inf", "1e300"],
)
def test_a_non_finite_or_huge_gradient_fails(grad: Any) -> None:
    x = X()
    assert outcome(lambda: backcheck.check(sq, x, grad), x).status == "fail"


# -- options -------------------------------------------------------------------------------------------------------
#: option name -> values refused by name
BAD_VALUES: dict[str, list[Any]] = {
    "strategy": ["x", "FULL", 1, ["full"]],
    "seed": [1.5, -1, "a", [1, 2], np.random.RandomState(0)],
    "detect": [0, -1, np.nan, "1", True],
    "confidence": [1.5, 1.0, 0, None, np.nan],
    "samples": [0, -1, 1.5, True],
    "atol": [-1, np.nan, np.inf, "1"],
    "rtol": [-1e-3],
    "step": [0, -1, np.nan, np.inf, "a", True, 1e-6 + 0j, np.array([]), object()],
    "floor": [0, 1, -0.5],
    "upcast": ["yes", 1],
    "curves": [1],
    "vectorized": ["no"],
    "progress": ["x"],
    "random": ["x", None],
    "max_batch_bytes": [0, 1.5],
    "executor": [1],
    "strict_dtype": [None],
}
BAD_OPTIONS = [{name: value} for name, values in BAD_VALUES.items() for value in values]


#: test ids without memory addresses, so that every pytest-xdist worker collects the same names
OPTION_IDS = [re.sub(r" at 0x[0-9a-fA-F]+", "", repr(o)) for o in BAD_OPTIONS]


@pytest.mark.parametrize("option", BAD_OPTIONS, ids=OPTION_IDS)
def test_a_bad_option_is_named(option: dict[str, Any]) -> None:
    (name,) = option
    x = X()
    typed(lambda: backcheck.check(sq, x, dsq, **option), BadInputError, name, watched=(x,))
    typed(lambda: backcheck.check_layer(lambda a: a**2, lambda d, a: 2 * a * d, (x,), **option), BadInputError, name)


@pytest.mark.parametrize(
    "step",
    [{"p": 1e-6}, [np.full(2, 1e-6), np.full(3, 1e-6)], ["a"] * 4, [None] * 4, [1e-6, np.nan, 1e-6, 1e-6], [1e-6] * 3],
    ids=["dict", "ragged list", "strings", "Nones", "a NaN", "too short"],
)
def test_a_step_that_is_not_numbers_is_named(step: Any) -> None:
    x = X()
    typed(lambda: backcheck.check(sq, x, dsq, step=step), BadInputError, "step=", watched=(x,))
    typed(lambda: backcheck.numerical_grad(sq, x, step=step), BadInputError, "step=", watched=(x,))


@pytest.mark.parametrize("step", [1e-30, 1e-300, 5e-324, 1e-17])
def test_a_step_lost_in_rounding_names_the_element(step: float) -> None:
    x = X()
    typed(lambda: backcheck.check(sq, x, dsq, step=step), BadInputError, "p[0]", "float64", watched=(x,))
    typed(lambda: backcheck.numerical_grad(sq, x, step=step), BadInputError, "p[0]", watched=(x,))
    typed(lambda: backcheck.check_layer(lambda a: a**2, lambda d, a: 2 * a * d, (x,), step=step), BadInputError, "a[0]")
    x32 = X().astype(np.float32)
    typed(lambda: backcheck.check(sq, x32, dsq, step=step, upcast=False), BadInputError, "float32", watched=(x32,))


def test_a_step_lost_at_one_element_only_names_that_one() -> None:
    x = np.array([1.0, 1e20, 2.0])
    typed(lambda: backcheck.check(sq, x, dsq, step=1e-3), BadInputError, "p[1]", watched=(x,))
    assert outcome(lambda: backcheck.check(sq, x, dsq, step=np.array([1e-3, 1e8, 1e-3])), x).status != "fail"


@pytest.mark.parametrize(
    "option",
    [
        dict(seed=2**70),
        dict(seed=np.int64(3)),
        dict(samples=np.int8(5)),
        dict(atol=np.float16(1e-3)),
        dict(detect=1e300),
        dict(detect=1e-300),
        dict(confidence=1e-300),
        dict(max_batch_bytes=1),
        dict(strategy="sparse", samples=10**9),
        dict(strategy="projected", samples=1),
        dict(floor=1e-300),
    ],
    ids=lambda o: repr(o),
)
def test_an_extreme_but_valid_option_gives_an_honest_verdict(option: dict[str, Any]) -> None:
    x = X()
    assert outcome(lambda: backcheck.check(sq, x, dsq, **option), x).status in ("pass", "inconclusive")
    assert outcome(lambda: backcheck.check(sq, x, lambda p: 3 * p, **option), x).status in ("fail", "inconclusive")


# -- check_layer -----------------------------------------------------------------------------------------------------
def _mm(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return x @ w


def _mm_backward(d: np.ndarray, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return d @ w.T, x.T @ d


def _xw() -> tuple[np.ndarray, np.ndarray]:
    return np.arange(1.0, 5.0).reshape(2, 2), np.arange(2.0, 6.0).reshape(2, 2)


LAYER_BAD_ARGUMENTS = [
    ("wrt a position beyond the inputs", dict(wrt=5), BadInputError, "position 5"),
    ("wrt unknown", dict(wrt=["z"]), BadInputError, "'z'"),
    ("constant a bool", dict(constant=True), BadInputError, "True"),
    ("names repeated", dict(names=["a", "a"]), BadInputError, "repeat"),
    ("names too few", dict(names=["a"]), BadInputError, "names"),
    ("dout NaN", dict(dout=np.full((2, 2), np.nan)), NonFiniteError, "dout"),
    ("dout inf", dict(dout=np.full((2, 2), -np.inf)), NonFiniteError, "dout"),
    ("dout wrong shape", dict(dout=np.ones(3)), GradientStructureError, "(3,)"),
    ("dout ints", dict(dout=np.ones((2, 2), int)), GradientStructureError, "int64"),
    ("dout complex", dict(dout=np.ones((2, 2), complex)), GradientStructureError, "complex128"),
    ("dout a str", dict(dout="a"), GradientStructureError, "dout"),
]


@pytest.mark.parametrize(
    "kwargs, error, culprit", [r[1:] for r in LAYER_BAD_ARGUMENTS], ids=[r[0] for r in LAYER_BAD_ARGUMENTS]
)
def test_a_bad_layer_argument_is_named(kwargs: dict[str, Any], error: type, culprit: str) -> None:
    x, w = _xw()
    typed(lambda: backcheck.check_layer(_mm, _mm_backward, (x, w), **kwargs), error, culprit, watched=(x, w))


def test_a_lone_name_is_one_input_not_its_letters() -> None:
    x, w = _xw()
    report = outcome(lambda: backcheck.check_layer(_mm, _mm_backward, (x, w), wrt="w"), x, w)
    assert [leaf.name for leaf in report.leaves] == ["w"]
    report = outcome(lambda: backcheck.check_layer(_mm, lambda d, x, w: (d @ w.T, None), (x, w), constant="w"), x, w)
    assert report.status == "pass" and [leaf.name for leaf in report.leaves] == ["x"]


@pytest.mark.parametrize("which", ["forward", "backward"])
@pytest.mark.parametrize("junk", [3, "f", None, np.ones(2)], ids=["int", "str", "None", "array"])
def test_a_function_that_is_not_one_is_named(which: str, junk: Any) -> None:
    x, w = _xw()
    fns = {"forward": _mm, "backward": _mm_backward, which: junk}
    typed(lambda: backcheck.check_layer(fns["forward"], fns["backward"], (x, w)), BadInputError, which, watched=(x, w))
    if which == "forward":
        typed(lambda: backcheck.check(junk, x, dsq), BadInputError, "not a function", watched=(x,))


LAYER_BAD_OUTPUTS = [
    ("None", lambda x: None, BadInputError, "object"),
    ("str", lambda x: "a", BadInputError, "<U1"),
    ("ints", lambda x: np.ones(2, int), BadInputError, "int64"),
    ("complex", lambda x: x.astype(complex), BadInputError, "complex128"),
    ("NaN", lambda x: x * np.nan, NonFiniteError, "NaN"),
    ("a pair with junk", lambda x: (x**2, "junk"), BadInputError, "out[1]"),
    ("generator", lambda x: (v for v in x), BadInputError, "object"),
]


@pytest.mark.parametrize(
    "forward, error, culprit", [r[1:] for r in LAYER_BAD_OUTPUTS], ids=[r[0] for r in LAYER_BAD_OUTPUTS]
)
def test_a_layer_output_that_is_not_float_arrays_is_named(forward: Any, error: type, culprit: str) -> None:
    x = X()
    typed(lambda: backcheck.check_layer(forward, lambda d, x: d, (x,)), error, culprit, watched=(x,))


LAYER_BAD_GRADIENTS = [
    ("wrong shape", lambda d, x: np.ones(3), GradientStructureError, "(3,)"),
    ("ints", lambda d, x: np.ones(4, int), GradientStructureError, "int64"),
    ("str", lambda d, x: "a", GradientStructureError, "str"),
    ("generator", lambda d, x: (v for v in [d]), GradientStructureError, "generator"),
    ("one too many", lambda d, x: (d, d), GradientStructureError, "2 gradient(s)"),
    ("none at all", lambda d, x: (), GradientStructureError, "0 gradient(s)"),
    ("a dict", lambda d, x: {"y": d}, GradientStructureError, "dict"),  # (keyed by no input: {"x": d} is read)
    ("raises", lambda d, x: 1 / 0, UserFunctionError, "ZeroDivisionError"),
]


@pytest.mark.parametrize(
    "backward, error, culprit", [r[1:] for r in LAYER_BAD_GRADIENTS], ids=[r[0] for r in LAYER_BAD_GRADIENTS]
)
def test_a_layer_gradient_of_the_wrong_kind_is_named(backward: Any, error: type, culprit: str) -> None:
    x = X()
    typed(lambda: backcheck.check_layer(lambda x: 2 * x, backward, (x,)), error, culprit, watched=(x,))


def test_a_backward_that_writes_everywhere_then_raises_leaves_the_inputs_alone() -> None:
    x, w = _xw()

    def backward(d: np.ndarray, x: np.ndarray, w: np.ndarray) -> Any:
        x[...], w[...], d[...] = 0.0, 0.0, 0.0
        raise ValueError("halfway")

    typed(lambda: backcheck.check_layer(_mm, backward, (x, w)), UserFunctionError, "backward", watched=(x, w))
