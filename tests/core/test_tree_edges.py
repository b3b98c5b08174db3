"""Edges of the parameter tree: dtypes with padding compared by value, arrays whose own elements share memory,
and functions that change the array object itself (dtype attribute, resize)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

import backcheck
from backcheck import ParamsError, UserFunctionError
from backcheck.bits import bitsum, by_value, differ, overlaps_itself
from backcheck.tree import Tree

X87 = np.dtype(np.longdouble).itemsize == 16 and np.finfo(np.longdouble).nmant == 63
needs_x87 = pytest.mark.skipif(not X87, reason="padding bytes exist only in x87 extended precision")
needs_wide = pytest.mark.skipif(
    np.dtype(np.longdouble).itemsize <= 8, reason="longdouble is float64 here: compared bitwise"
)


def _pad(a: np.ndarray, byte: int) -> np.ndarray:
    """``a`` (x87 longdouble) with its six padding bytes set to ``byte``: the same values, other bytes."""
    out = a.copy()
    out.view(np.uint8).reshape(a.size, -1)[:, 10:] = byte
    return out


# -- comparing by value where elements hold padding ----------------------------------------------------------
def test_only_padded_dtypes_are_compared_by_value():
    assert not any(by_value(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.complex64, np.complex128))
    assert by_value(np.dtype(np.longdouble)) == (np.dtype(np.longdouble).itemsize > 8)
    assert by_value(np.dtype(np.clongdouble)) == (np.dtype(np.clongdouble).itemsize > 16)


@needs_x87
def test_padding_is_no_difference_and_no_checksum_change():
    a = np.linspace(-3, 3, 7).astype(np.longdouble)
    b = _pad(a, 0xAB)
    assert a.tobytes() != b.tobytes()
    assert differ(a, b).size == 0 and bitsum(a) == bitsum(b)
    tree = Tree(b, "x")
    sums = tree.sums()
    b[...] = b * np.longdouble(1)  # numpy arithmetic: the same values, its own padding
    assert tree.changed() == [] and tree.intact(sums)
    c = np.linspace(-1, 1, 3).astype(np.clongdouble) * (1 + 2j)
    d = c.copy()
    d.view(np.uint8).reshape(3, 2, -1)[:, :, 10:] = 0x5C
    assert c.tobytes() != d.tobytes() and differ(c, d).size == 0 and bitsum(c) == bitsum(d)


@needs_wide
def test_a_value_compared_by_value_is_still_bit_exact():
    """One ulp, the sign of zero, the imaginary part alone: each is a difference and moves the checksum; NaN
    against NaN (another payload) is none."""
    a = np.array([1.0, 0.0, np.nan, 3.0], dtype=np.longdouble)
    b = a.copy()
    b[0] = np.nextafter(a[0], np.longdouble(2))  # below float64's resolution: only the remainder sees it
    b[1] = -0.0
    b[3] = np.nan
    assert [int(i) for i in differ(a, b)] == [0, 1, 3]
    for k in (0, 1):
        one = a.copy()
        one[k] = b[k]
        assert bitsum(one) != bitsum(a), k
    c = np.array([1 + 1j, 2 + 2j], dtype=np.clongdouble)
    d = c.copy()
    d[1] = 2 + np.nextafter(np.longdouble(2), np.longdouble(3)) * 1j
    assert [int(i) for i in differ(c, d)] == [1] and bitsum(c) != bitsum(d)


@needs_x87
def test_a_nan_payload_is_no_difference_by_value():
    a = np.array([np.nan, 1.0], dtype=np.longdouble)
    b = a.copy()
    b.view(np.uint8).reshape(2, -1)[0, 0] ^= 1  # another NaN payload
    assert a.tobytes() != b.tobytes() and np.isnan(b[0])
    assert differ(a, b).size == 0 and bitsum(a) == bitsum(b)


def test_other_dtypes_stay_bitwise():
    """-0.0 against 0.0 and two NaN payloads differ for float64 and float32, as they always did."""
    for dt, u in ((np.float64, np.uint64), (np.float32, np.uint32)):
        a = np.array([0.0, np.nan, 1.0], dtype=dt)
        b = a.copy()
        b[0] = -0.0
        b.view(u)[1] ^= 1
        assert [int(i) for i in differ(a, b)] == [0, 1]
        assert bitsum(a) != bitsum(b)


@needs_x87
def test_a_pure_function_of_padded_longdouble_passes_and_a_writing_one_is_caught():
    a = _pad(np.arange(1.0, 4.0).astype(np.longdouble), 0xAB)
    raw = a.tobytes()
    report = backcheck.check(lambda p: np.sum(p**2), a, lambda p: 2 * p)
    assert report.status == "pass" and not [f for f in report.findings if f.kind == "mutation"]
    assert a.tobytes() == raw

    def writes(p):
        p[1] += 1  # a real write: values change
        return np.sum(p**2)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = backcheck.check(writes, a, lambda p: 2 * p)
    assert [f for f in report.findings if f.kind == "mutation"]
    assert a.tobytes() == raw


# -- arrays whose own elements share memory ------------------------------------------------------------------
def _brute_overlap(a: np.ndarray) -> bool:
    start = int(a.__array_interface__["data"][0])
    seen: set[int] = set()
    for idx in itertools.product(*(range(n) for n in a.shape)):
        first = start + sum(i * s for i, s in zip(idx, a.strides, strict=True))
        for byte in range(first, first + a.itemsize):
            if byte in seen:
                return True
            seen.add(byte)
    return False


def test_ordinary_layouts_do_not_overlap_themselves():
    a = np.arange(24.0).reshape(2, 3, 4)
    for view in (a, a.T, a[:, ::-1, ::2], a[1], np.asfortranarray(a), a[:, None], a[..., :0], a[0, 0, 0:1]):
        assert not overlaps_itself(view) and not _brute_overlap(view)


def test_zero_strides_and_partial_overlaps_are_found():
    base = np.zeros(40)
    strided = np.lib.stride_tricks.as_strided
    cases = {
        "zero stride": (strided(base, shape=(2, 3), strides=(0, 8)), True),
        "zero stride on a length-1 axis": (strided(base, shape=(1, 3), strides=(0, 8)), False),
        "half-element stride": (strided(base, shape=(3,), strides=(4,)), True),
        "interleaved, apart": (strided(base, shape=(3, 3), strides=(24, 16)), False),
        "interleaved, overlapping": (strided(base, shape=(4, 2), strides=(8, 24)), True),
        "read-only broadcast": (np.broadcast_to(base[:3], (4, 3)), True),
    }
    for name, (view, expected) in cases.items():
        assert overlaps_itself(view) == expected == _brute_overlap(view), name


def test_overlap_agrees_with_brute_force_on_random_layouts():
    rng = np.random.default_rng(7)
    base = np.zeros(4096, dtype=np.float32)
    mid = base[2048:]
    found = {True: 0, False: 0}
    for _ in range(300):
        ndim = int(rng.integers(1, 4))
        shape = tuple(int(n) for n in rng.integers(1, 5, size=ndim))
        strides = tuple(int(s) for s in rng.choice([-40, -16, -8, -4, -2, 0, 2, 4, 8, 12, 16, 24, 40], size=ndim))
        view = np.lib.stride_tricks.as_strided(mid, shape=shape, strides=strides)
        expected = _brute_overlap(view)
        assert overlaps_itself(view) == expected, (shape, strides)
        found[expected] += 1
    assert min(found.values()) > 20  # both answers were exercised


def test_a_writable_self_overlapping_leaf_is_refused_by_name_and_a_read_only_one_copied():
    base = np.arange(1.0, 4.0)
    W = np.lib.stride_tricks.as_strided(base, shape=(2, 3), strides=(0, 8))
    b = np.ones(2)
    with pytest.raises(ParamsError, match=r"params\['W'\] has elements that share memory") as info:
        Tree({"b": b, "W": W}, "params")
    assert "copy" in info.value.hint
    assert base.tolist() == [1.0, 2.0, 3.0] and b.tolist() == [1.0, 1.0]
    copied = Tree({"W": W}, "params", in_place=False)  # a copy is perturbed: nothing to refuse
    assert not copied.leaves[0].in_place and not np.shares_memory(copied.leaves[0].work, base)
    frozen = np.broadcast_to(base, (2, 3))
    report = backcheck.check(lambda p: np.sum(p**2), frozen, lambda p: 2 * p)
    assert report.status == "pass"


# -- functions that change the array object --------------------------------------------------------------------
def test_a_changed_dtype_attribute_is_set_back_and_the_check_goes_on():
    x = np.arange(1.0, 5.0)
    tree = Tree(x, "x")
    sums = tree.sums()
    x.dtype = np.float32  # also changes its shape, to (8,)
    assert not tree.intact(sums) and tree.changed()
    tree.restore()
    assert x.dtype == np.float64 and x.shape == (4,) and x.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert tree.intact(sums) and tree.changed() == []


def test_a_resize_is_undone_in_the_new_memory_and_stops_the_check_by_name():
    y = np.arange(1.0, 5.0)
    tree = Tree({"y": y}, "p")
    y.resize((1000,), refcheck=False)  # large enough to move
    y[:] = -7.0
    with pytest.raises(UserFunctionError, match=r"p\['y'\] cannot be put back as it was.*resized") as info:
        tree.restore()
    assert info.value.hint
    assert y.shape == (4,) and y.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert np.shares_memory(tree.leaves[0].work, y)  # perturbing goes on in the memory the array has now
    private = Tree(np.arange(1.0, 5.0), "x", in_place=False)
    handed = private.current()
    handed.resize((1000,), refcheck=False)
    with pytest.raises(UserFunctionError, match="x cannot be put back"):
        private.restore()
    assert handed.shape == (4,) and handed.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_a_resize_to_the_same_size_is_a_reshape_and_is_undone_quietly():
    x = np.arange(6.0)
    tree = Tree(x, "x")
    x.resize((2, 3), refcheck=False)
    assert tree.changed()
    tree.restore()
    assert x.shape == (6,) and x.tolist() == list(np.arange(6.0)) and tree.changed() == []


def test_check_with_a_function_that_resizes_or_retypes_its_input():
    def resizes(p):
        p.resize((50,), refcheck=False)
        return 1.0

    def retypes(p):
        p.dtype = np.int64
        return float(np.sum(p.view(np.float64) ** 2))

    x = np.arange(1.0, 5.0)
    with pytest.raises(UserFunctionError, match="resized"):
        backcheck.check(resizes, x, lambda p: 2 * p)
    assert x.dtype == np.float64 and x.tolist() == [1.0, 2.0, 3.0, 4.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = backcheck.check(retypes, x, lambda p: 2 * p)
    assert [f for f in report.findings if f.kind == "mutation"]
    assert x.dtype == np.float64 and x.tolist() == [1.0, 2.0, 3.0, 4.0]


# -- finding an element's array ------------------------------------------------------------------------------
def test_an_elements_array_is_found_past_empty_arrays_sharing_its_offset():
    # empty arrays share their offset with the next one: an element belongs to the last array starting there
    arrays = {"a": np.zeros(0), "b": np.ones(3), "c": np.zeros((0, 2)), "d": np.zeros(0), "e": np.ones(2)}
    tree = Tree(arrays, bare_keys=True)
    names = [tree.locate(i)[0].name for i in range(tree.size)]
    assert names == ["b", "b", "b", "e", "e"], names
    assert [tree.locate(i)[1] for i in range(tree.size)] == [0, 1, 2, 0, 1]
    expected = np.searchsorted(tree.offsets, np.arange(tree.size), side="right") - 1
    assert [tree.leaf_of(i) for i in range(tree.size)] == expected.tolist()
    one = Tree({"x": np.ones((2, 3))})
    assert [one.leaf_of(i) for i in range(6)] == [0] * 6


def test_a_check_over_empty_arrays_between_others_judges_each_element_in_its_own_array():
    point = {"a": np.zeros(0), "w": np.array([0.5, -1.0, 2.0]), "b": np.zeros((0, 3)), "v": np.array([1.5, 0.25])}
    before = {k: v.copy() for k, v in point.items()}

    def f(p):
        return float(np.sum(np.sin(p["w"])) + np.sum(p["v"] ** 3) + np.sum(p["a"]) + np.sum(p["b"]))

    def right(p):
        return {"a": np.zeros(0), "w": np.cos(p["w"]), "b": np.zeros((0, 3)), "v": 3 * p["v"] ** 2}

    def wrong(p):
        return {**right(p), "v": 3 * p["v"] ** 2 * np.array([1.0, 1.01])}

    assert backcheck.check(f, point, right, strategy="full").status == "pass"
    report = backcheck.check(f, point, wrong, strategy="full")
    assert report.status == "fail", report
    assert [lf.name for lf in report.leaves if lf.n_mismatch] == ["p['v']"], report
    assert all(np.array_equal(point[k], before[k]) for k in point)
