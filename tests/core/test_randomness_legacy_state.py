"""numpy's global state is frozen through its raw MT19937 bytes (and one normal drawn to tell whether one is
kept): a check leaves every stream exactly as found, the kept normal (``has_gauss``/``gauss``) included, whether
the function draws or not, an odd or even number of normals, and when it raises mid-check."""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest

import backcheck
from backcheck import randomness
from backcheck.errors import UserFunctionError

torch = pytest.importorskip("torch")

X = np.linspace(-1.0, 1.0, 3)


def _setup(kept: bool) -> None:
    """Seed every stream; with ``kept``, leave numpy's global state holding the second normal of a pair."""
    np.random.seed(11)
    random.seed(11)
    torch.manual_seed(11)
    np.random.randn(3 if kept else 4)  # an odd count keeps a normal (has_gauss = 1)
    assert np.random.get_state()[3] == int(kept)


def _next_draws() -> tuple[object, ...]:
    """What each stream gives next, and numpy's whole legacy state (kept normal included) before it."""
    _, key, pos, has_gauss, gauss = np.random.get_state()
    return (
        key.copy(),
        pos,
        has_gauss,
        gauss,
        np.random.randn(5),
        np.random.rand(3),
        [random.random() for _ in range(3)],
        torch.randn(3).numpy(),
    )


def _assert_same(a: tuple[object, ...], b: tuple[object, ...]) -> None:
    assert len(a) == len(b)
    for u, v in zip(a, b, strict=True):
        assert np.array_equal(np.asarray(u), np.asarray(v)), (u, v)


def _draws_from_every_stream(count: int):
    def f(x):
        np.random.randn(count)
        random.random()
        torch.rand(1)
        return float(np.sum(x**3))

    return f


def _quiet(x):
    return float(np.sum(x**3))


@pytest.mark.parametrize("kept", [False, True], ids=["no-normal-kept", "normal-kept"])
@pytest.mark.parametrize(
    "f", [_quiet, _draws_from_every_stream(1), _draws_from_every_stream(2)], ids=["quiet", "odd", "even"]
)
def test_every_stream_gives_the_draws_it_would_have_given(f, kept):
    _setup(kept)
    expected = _next_draws()
    _setup(kept)
    r = backcheck.check(f, X.copy(), lambda x: 3 * x**2)
    assert r.ok, r
    _assert_same(_next_draws(), expected)


@pytest.mark.parametrize("kept", [False, True], ids=["no-normal-kept", "normal-kept"])
def test_the_functions_first_call_draws_what_the_streams_held(kept):
    seen = []

    def f(x):
        seen.append((np.random.randn(3), random.random(), torch.rand(1).numpy()))
        return float(np.sum(x**3))

    _setup(kept)
    expected = (np.random.randn(3), random.random(), torch.rand(1).numpy())
    _setup(kept)
    backcheck.check(f, X.copy(), lambda x: 3 * x**2)
    _assert_same(seen[0], expected)


@pytest.mark.parametrize("kept", [False, True], ids=["no-normal-kept", "normal-kept"])
def test_a_function_that_raises_mid_check_leaves_every_stream_as_found(kept):
    calls = []

    def f(x):
        calls.append(np.random.randn(3))  # odd: the function leaves a normal kept, or uses one up
        random.random()
        torch.rand(2)
        if len(calls) > 3:
            raise ZeroDivisionError("late")
        return float(np.sum(x**3))

    _setup(kept)
    expected = _next_draws()
    _setup(kept)
    with pytest.raises(UserFunctionError):
        backcheck.check(f, X.copy(), lambda x: 3 * x**2)
    assert len(calls) > 3
    _assert_same(_next_draws(), expected)


@pytest.mark.parametrize("kept", [False, True], ids=["no-normal-kept", "normal-kept"])
def test_replayed_normals_are_the_same_at_every_evaluation(kept):
    # the loss and its gradient draw the same 3 normals (an odd count) at every call once replayed
    def f(x):
        return float(np.sum(x**2 * (1 + 0.1 * np.random.randn(3))))

    def grad(x):
        return 2 * x * (1 + 0.1 * np.random.randn(3))

    _setup(kept)
    expected = _next_draws()
    _setup(kept)
    r = backcheck.check(f, X.copy(), grad)
    assert r.ok, r
    assert any("random" in n for n in r.notes), r.notes
    _assert_same(_next_draws(), expected)


def test_a_quiet_check_reads_numpys_state_without_get_state(monkeypatch):
    # the cheap path: the raw key and position, no get_state/set_state (which copy the key word by word)
    calls = {"get_state": 0, "set_state": 0}
    for name in calls:
        real = getattr(np.random, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(np.random, name, counted)
    _setup(kept=False)
    calls.update(get_state=0, set_state=0)
    backcheck.check(_quiet, X.copy(), lambda x: 3 * x**2)
    assert calls == {"get_state": 0, "set_state": 0}
    # with a normal kept, it is put back through set_state (it has no raw interface), once taken, once restored
    _setup(kept=True)
    expected = _next_draws()
    _setup(kept=True)
    calls.update(get_state=0, set_state=0)
    backcheck.check(_quiet, X.copy(), lambda x: 3 * x**2)
    assert calls == {"get_state": 0, "set_state": 2}
    monkeypatch.undo()
    _assert_same(_next_draws(), expected)


def test_an_unexpected_raw_layout_falls_back_to_get_state(monkeypatch):
    monkeypatch.setattr(randomness, "_raw_layout", [False])
    for kept in (False, True):
        _setup(kept)
        expected = _next_draws()
        _setup(kept)
        backcheck.check(_draws_from_every_stream(1), X.copy(), lambda x: 3 * x**2)
        _assert_same(_next_draws(), expected)


def test_a_numpy_without_the_global_randomstate_name_takes_the_documented_path(monkeypatch):
    # the kept normal is told through np.random.mtrand._rand: where that name is gone, get_state and set_state
    bg = np.random.get_bit_generator()
    monkeypatch.setattr(randomness, "_raw_layout", [])
    monkeypatch.setattr(np.random.mtrand, "_rand", object())
    assert randomness._raw_address(bg) is None
    monkeypatch.undo()
    monkeypatch.setattr(randomness, "_raw_layout", [])
    assert randomness._raw_address(np.random.get_bit_generator()) is not None


def test_the_raw_bytes_are_the_documented_state():
    # the layout the cheap path assumes, against the documented state, at a position inside the key
    _setup(kept=False)
    np.random.rand(7)
    frozen = randomness.LegacyState.take()
    assert frozen.raw is not None and frozen.full is None
    state = np.random.get_bit_generator().state["state"]
    assert np.array_equal(randomness._mt_state(frozen.raw)["key"], state["key"])
    assert randomness._mt_state(frozen.raw)["pos"] == state["pos"]


def test_a_swapped_global_generator_is_put_back():
    original = np.random.get_bit_generator()
    _setup(kept=True)
    expected = _next_draws()
    _setup(kept=True)

    def f(x):
        np.random.set_bit_generator(np.random.PCG64(3))  # a function that replaces numpy's global generator
        return float(np.sum(x**3))

    try:
        backcheck.check(f, X.copy(), lambda x: 3 * x**2)
        assert np.random.get_bit_generator() is original
        _assert_same(_next_draws(), expected)
    finally:
        np.random.set_bit_generator(original)


def test_a_global_generator_other_than_mt19937_is_kept_without_a_warning():
    original = np.random.get_bit_generator()
    try:
        np.random.set_bit_generator(np.random.PCG64(5))
        np.random.randn(3)
        before = np.random.get_state(legacy=False)
        expected = np.random.randn(4)
        np.random.set_state(before)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # (get_state() warns for a generator other than MT19937)
            backcheck.check(_draws_from_every_stream(3), X.copy(), lambda x: 3 * x**2)
        assert np.array_equal(np.random.randn(4), expected)
    finally:
        np.random.set_bit_generator(original)


@pytest.mark.parametrize("kept", [False, True], ids=["no-normal-kept", "normal-kept"])
def test_a_mocked_standard_normal_does_not_mislead_the_snapshot(monkeypatch, kept):
    # (a test suite may mock numpy's module functions; the snapshot asks numpy's global RandomState itself)
    _setup(kept)
    expected = _next_draws()
    _setup(kept)
    monkeypatch.setattr(np.random, "standard_normal", lambda *args, **kwargs: 0.0)
    backcheck.check(_quiet, X.copy(), lambda x: 3 * x**2)
    monkeypatch.undo()
    _assert_same(_next_draws(), expected)
