"""The random module's global generator is frozen through its raw MT19937 state (position and key, read and
written whole where CPython lays them out as confirmed against ``getstate``) and its kept normal
(``gauss_next``): a check leaves the stream exactly as found, whether the function draws or not, uses up a kept
normal or leaves one, raises mid-check, or runs where the layout is not the one confirmed."""

from __future__ import annotations

import random

import numpy as np
import pytest

import backcheck
from backcheck import randomness
from backcheck.errors import UserFunctionError

X = np.linspace(-1.0, 1.0, 3)


def _setup(kept: bool) -> None:
    """Seed the stream; with ``kept``, leave it holding the second normal of a ``gauss`` pair."""
    random.seed(7)
    random.random()
    if kept:
        random.gauss(0.0, 1.0)
    assert (random.getstate()[2] is not None) == kept


def _next() -> tuple[object, ...]:
    """The whole state, then what the stream gives next (normals first: a kept one comes out first)."""
    return (random.getstate(), random.gauss(0.0, 1.0), random.gauss(0.0, 1.0), random.random(), random.getrandbits(64))


def _drawing(count: int):
    def f(x):
        for _ in range(count):
            random.gauss(0.0, 1.0)  # an odd count leaves a normal kept, or uses the kept one up
        random.random()
        return float(np.sum(x**3))

    return f


def _quiet(x):
    return float(np.sum(x**3))


@pytest.mark.parametrize("kept", [False, True], ids=["no-normal-kept", "normal-kept"])
@pytest.mark.parametrize("f", [_quiet, _drawing(1), _drawing(2)], ids=["quiet", "odd", "even"])
def test_the_stream_gives_what_it_would_have_given(f, kept):
    _setup(kept)
    expected = _next()
    _setup(kept)
    r = backcheck.check(f, X.copy(), lambda x: 3 * x**2)
    assert r.ok, r
    assert _next() == expected


@pytest.mark.parametrize("kept", [False, True], ids=["no-normal-kept", "normal-kept"])
def test_a_function_that_raises_mid_check_leaves_the_stream_as_found(kept):
    calls = []

    def f(x):
        calls.append(random.gauss(0.0, 1.0))
        if len(calls) > 3:
            raise ZeroDivisionError("late")
        return float(np.sum(x**3))

    _setup(kept)
    expected = _next()
    _setup(kept)
    with pytest.raises(UserFunctionError):
        backcheck.check(f, X.copy(), lambda x: 3 * x**2)
    assert len(calls) > 3
    assert _next() == expected


def test_a_replayed_stream_gives_every_evaluation_the_same_draws():
    # random.gauss in the loss and its gradient: the same normals at every call once the stream is replayed
    def f(x):
        return float(np.sum(x**2 * (1 + 0.1 * random.gauss(0.0, 1.0))))

    def grad(x):
        return 2 * x * (1 + 0.1 * random.gauss(0.0, 1.0))

    _setup(kept=True)
    expected = _next()
    _setup(kept=True)
    r = backcheck.check(f, X.copy(), grad)
    assert r.ok, r
    assert any("random" in n for n in r.notes), r.notes
    assert _next() == expected


def test_a_quiet_check_reads_the_state_without_getstate(monkeypatch):
    # (the module's functions are the instance's methods, bound at import: both are counted)
    calls = {"getstate": 0, "setstate": 0}
    inst = random._inst  # type: ignore[attr-defined]
    for owner in (inst, random):
        for name in calls:
            real = getattr(owner, name)

            def counted(*args, _real=real, _name=name, **kwargs):
                calls[_name] += 1
                return _real(*args, **kwargs)

            monkeypatch.setattr(owner, name, counted)
    backcheck.check(_quiet, X.copy(), lambda x: 3 * x**2)
    assert calls == {"getstate": 0, "setstate": 0}


def test_an_unconfirmed_layout_falls_back_to_getstate(monkeypatch):
    monkeypatch.setattr(randomness, "_py_layout", [None])
    for kept in (False, True):
        _setup(kept)
        expected = _next()
        _setup(kept)
        frozen = randomness.PythonState.take()
        assert frozen.raw is None
        backcheck.check(_drawing(1), X.copy(), lambda x: 3 * x**2)
        assert _next() == expected


def test_the_raw_bytes_are_the_documented_state():
    random.seed(3)
    random.random()
    frozen = randomness.PythonState.take()
    assert frozen.raw is not None
    _version, words, _gauss = random.getstate()
    key = np.frombuffer(frozen.raw, dtype=np.uint32, offset=np.dtype(np.intc).itemsize)
    assert np.array_equal(key, np.asarray(words[:-1], dtype=np.uint32))
    assert int(np.frombuffer(frozen.raw, dtype=np.intc, count=1)[0]) == words[-1]
