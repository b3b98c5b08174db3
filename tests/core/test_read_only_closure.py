"""A closure-style loss (CS231n's ``lambda _: loss(W)``) over a read-only array: np.load with mmap_mode='r',
setflags(write=False), np.broadcast_to. The check cannot move the user's memory, so it moves a private copy,
which a closure over the original never sees: a right gradient failed as an 'unread input'. That is refused now,
by name, with the way out; a loss that reads its argument is checked as ever."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError

W0 = np.random.default_rng(0).normal(size=(3, 4))


def _read_only(kind: str, tmp_path) -> np.ndarray:
    if kind == "mmap":
        np.save(tmp_path / "W.npy", W0)
        return np.load(tmp_path / "W.npy", mmap_mode="r")
    if kind == "flag":
        w = W0.copy()
        w.setflags(write=False)
        return w
    return np.broadcast_to(W0[0], (3, 4))


@pytest.mark.parametrize("kind", ["mmap", "flag", "broadcast"])
def test_a_closure_over_a_read_only_array_is_refused_by_name(kind: str, tmp_path) -> None:
    w = _read_only(kind, tmp_path)
    before = np.array(w)
    with pytest.raises(BadInputError, match="_ is read-only") as info:
        backcheck.check(lambda _: float(np.sum(np.tanh(w))), w, lambda _: 1 - np.tanh(w) ** 2)
    assert "np.array(W)" in (info.value.hint or "")
    np.testing.assert_array_equal(w, before)
    # read as its argument, the same array is checked: a right gradient passes, a wrong one fails
    assert backcheck.check(lambda v: float(np.sum(np.tanh(v))), w, lambda v: 1 - np.tanh(v) ** 2).status == "pass"
    wrong = backcheck.check(lambda v: float(np.sum(np.tanh(v))), w, lambda v: 1.1 * (1 - np.tanh(v) ** 2))
    assert wrong.status == "fail"


def test_a_closure_over_a_writable_array_passes() -> None:
    w = W0.copy()
    assert backcheck.check(lambda _: float(np.sum(np.tanh(w))), w, lambda _: 1 - np.tanh(w) ** 2).status == "pass"
