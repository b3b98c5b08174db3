"""Arrays as bits: which elements of two arrays differ, a cheap checksum of an array, where its elements lie
in memory (whether two arrays, or one array's own elements, overlap), the power-of-two grid float64 values
lie on, dot products kept on one thread (:func:`dot`), and float dtypes numpy holds but does not compute in
(ml_dtypes' bfloat16 and float8: :func:`foreign_float`).

Every dtype is compared bit for bit, except those whose elements hold padding (x87 extended precision: 10
bytes of value in 16): numpy arithmetic leaves those bytes as it likes, so they are compared by value, NaN
equal to NaN and bit-exact otherwise (-0.0 is not 0.0).
"""

from __future__ import annotations

import zlib

import numpy as np

from backcheck.errors import ParamsError

_UINTS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
#: Arrays up to this size are compared as bytes first by :func:`differ`.
SMALL_BYTES = 4096
_NONE = np.empty(0, dtype=np.intp)
_NONE.flags.writeable = False


def by_value(dtype: np.dtype) -> bool:
    """Whether ``dtype``'s elements are compared by value (floats wider than 8 bytes, complex longdouble)."""
    return (dtype.kind == "f" and dtype.itemsize > 8) or (dtype.kind == "c" and dtype.itemsize > 16)


def _parts(a: np.ndarray) -> tuple[np.ndarray, ...]:
    """The real arrays an array's values are made of (one, or a complex array's real and imaginary parts)."""
    flat = a.reshape(-1)
    return (flat.real, flat.imag) if a.dtype.kind == "c" else (flat,)


def differ(now: np.ndarray, was: np.ndarray) -> np.ndarray:
    """The flat indices where two contiguous arrays of one dtype differ (bitwise; by value where
    :func:`by_value`)."""
    if by_value(now.dtype):
        same = np.ones(now.size, dtype=bool)
        for x, y in zip(_parts(now), _parts(was), strict=True):
            same &= ((x == y) & (np.signbit(x) == np.signbit(y))) | (np.isnan(x) & np.isnan(y))
        return np.flatnonzero(~same)
    if now.nbytes <= SMALL_BYTES and now.tobytes() == was.tobytes():
        return _NONE  # (a small array's bytes compare at once; the indices are looked for only if they differ)
    u = _UINTS.get(now.dtype.itemsize)
    if u is not None:
        return np.flatnonzero(now.reshape(-1).view(u) != was.reshape(-1).view(u))
    rows = now.size
    now_b, was_b = now.reshape(-1).view(np.uint8).reshape(rows, -1), was.reshape(-1).view(np.uint8).reshape(rows, -1)
    return np.flatnonzero((now_b != was_b).any(axis=1))


def bitsum(a: np.ndarray) -> int:
    """A checksum of an array's bits: the CRC-32 of a small contiguous array's bytes, else the sum (modulo 2**64)
    of its elements read as unsigned integers of their width; where :func:`by_value`, the sum of each value's
    float64 high part and float64 remainder (every NaN alike)."""
    if by_value(a.dtype):
        total = 0
        for x in _parts(a):
            with np.errstate(all="ignore"):
                hi = x.astype(np.float64)
                rest = (x - hi).astype(np.float64)
            nan = np.isnan(x)
            hi[nan], rest[nan] = np.nan, 0.0
            total += int(hi.view(np.uint64).sum(dtype=np.uint64)) + 3 * int(rest.view(np.uint64).sum(dtype=np.uint64))
        return total % 2**64
    if a.nbytes <= SMALL_BYTES and a.flags.c_contiguous:
        # a small array: its bytes' CRC-32, one pass in C without a ufunc's set-up (10x the sum's speed below a
        # few hundred elements, slower above), which also sees two elements swapped
        try:
            return zlib.crc32(a.data)
        except (TypeError, ValueError, BufferError):  # (a dtype without a buffer format: summed below)
            pass
    u = _UINTS.get(a.dtype.itemsize)
    if u is None:
        return int(np.ascontiguousarray(a).view(np.uint8).sum(dtype=np.uint64))
    return int(a.view(u).sum(dtype=np.uint64))


def span(a: np.ndarray) -> tuple[int, int]:
    """The byte interval an array's elements lie in."""
    lo = hi = int(a.__array_interface__["data"][0])
    for n, stride in zip(a.shape, a.strides, strict=True):
        if stride < 0:
            lo += (n - 1) * stride
        else:
            hi += (n - 1) * stride
    return lo, hi + a.itemsize


def overlaps_itself(a: np.ndarray) -> bool:
    """Whether two elements of ``a`` share a byte (a zero stride, as broadcasting and ``as_strided`` make).

    O(ndim) for any layout whose strides nest (each axis's stride at least the extent of the smaller ones:
    every C/F-ordered array, slice and transpose); other layouts compare the elements' byte offsets.
    """
    axes = sorted((abs(s), n) for n, s in zip(a.shape, a.strides, strict=True) if n > 1)
    if a.size <= 1 or not axes:
        return False
    if axes[0][0] == 0:
        return True
    extent = a.itemsize
    for stride, n in axes:
        if stride < extent:
            break
        extent = stride * (n - 1) + extent
    else:
        return False
    starts = np.zeros(1, dtype=np.int64)  # a rare layout (interleaved strides): every element's first byte
    for stride, n in axes:
        starts = (starts[:, None] + stride * np.arange(n, dtype=np.int64)).reshape(-1)
    starts.sort()
    return bool(np.any(np.diff(starts) < a.itemsize))


def power_of_two_grid(values: np.ndarray) -> np.ndarray:
    """Per column of ``values``, the largest power of two every nonzero finite value is a multiple of (0 where
    none is): the spacing of the grid they lie on, far coarser than their own last place when they were
    computed as differences of larger terms."""
    v = np.where(np.isfinite(values), values, 0.0)
    mant, exp = np.frexp(v)
    whole = np.abs(mant * 2.0**53).astype(np.int64)
    low = (whole & -whole).astype(np.float64)  # the lowest set bit of each mantissa
    bit = np.where(whole != 0, np.ldexp(low, exp - 53), np.inf)
    out = bit.min(axis=0)
    return np.where(np.isfinite(out), out, 0.0)


#: Machine epsilon of bfloat16 (8 bits of significand), a dtype numpy lacks.
BFLOAT16_EPS = 2.0**-7

_EPS: dict[object, float] = {}


def machine_eps(dtype: object) -> float:
    """``np.finfo(dtype).eps`` as a float, remembered per dtype (finfo costs a microsecond a call, and a small
    check asks it a dozen times)."""
    try:
        return _EPS[dtype]
    except KeyError:
        value = _EPS[dtype] = float(np.finfo(dtype).eps)  # type: ignore[call-overload]
        return value
    except TypeError:  # an unhashable dtype-like: finfo says whether it is one
        return float(np.finfo(dtype).eps)  # type: ignore[call-overload]


#: Elements per call of BLAS's dot product in :func:`dot`: OpenBLAS computes one of at most 10,000 on the calling
#: thread and splits a longer one over its threads, whose wake-up on a machine whose cores are busy (tests run in
#: parallel) costs milliseconds: 16 ms for a dot of 32,768 elements that takes 2 microseconds on one thread.
SERIAL_DOT = 8192


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """``<a, b>`` of two 1-D arrays (as ``np.dot`` computes it), :data:`SERIAL_DOT` elements at a time: every
    evaluation of a check reduces its outputs this way, and a check's wall time must not hang on the machine's
    load."""
    n = a.shape[0]
    if n <= SERIAL_DOT:
        return float(np.dot(a, b))
    return float(sum(float(np.dot(a[k : k + SERIAL_DOT], b[k : k + SERIAL_DOT])) for k in range(0, n, SERIAL_DOT)))


def foreign_float(dt: np.dtype) -> bool:
    """A float dtype numpy holds but does not compute in (ml_dtypes' bfloat16, float8 and narrower kinds, some of
    which numpy reads as floats of kind 'f' and ml_dtypes 0.7 gives ``np.finfo`` too)."""
    if dt.kind not in "Vf":
        return False
    return dt.type.__module__.split(".")[0] == "ml_dtypes" or dt.name == "bfloat16" or dt.name.startswith("float8")


def foreign_float_error(name: str, dt: np.dtype) -> ParamsError:
    """The error for an array of such a dtype given to be differentiated."""
    return ParamsError(
        f"{name} has dtype {dt.name} (ml_dtypes), a float numpy does not compute in: the check cannot perturb it.",
        f"pass {name}.astype(np.float32) (a function that rounds to {dt.name} inside is checked so too), or check "
        "torch or jax code with backcheck.torch / backcheck.jax, which take bfloat16 tensors.",
    )
