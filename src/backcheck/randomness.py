"""Replaying the same random stream at every evaluation, so stochastic layers (dropout) can be checked.

A function that draws from a generator gives a different value each call, and finite differences of it
measure noise. Restoring every generator's state before every call makes it deterministic: the same dropout
mask at ``x + h`` and ``x - h``, and the same mask in the gradient function as in the loss.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import random
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar, cast

import numpy as np

from backcheck.errors import BadInputError, NondeterministicError

F = TypeVar("F", bound=Callable[..., Any])

_LEGACY = object()  # marker for numpy's global RandomState
_PYTHON = object()  # marker for the random module's global generator (random.random() and friends)
_TORCH = object()  # marker for torch's default CPU generator


class FrozenRandom:
    """The states of a set of generators, restorable at will.

    Parameters
    ----------
    generators : iterable
        ``numpy.random.Generator``, ``numpy.random.RandomState``, ``random.Random`` or ``torch.Generator``
        objects.
    legacy : bool
        Also freeze numpy's global state (``np.random.rand`` and friends) and the ``random`` module's.
    torch : bool or None
        Also freeze torch's default generator; None: when torch is already imported.
    """

    def __init__(self, generators: Iterable[Any] = (), legacy: bool = True, torch: bool | None = None) -> None:
        self.items: list[Any] = []
        seen: set[int] = set()
        for g in generators:
            if id(g) not in seen and _is_generator(g):
                seen.add(id(g))
                self.items.append(g)
        if legacy:
            self.items.extend((_LEGACY, _PYTHON))
        if torch and "torch" not in sys.modules:
            _import_torch()  # asked for by name: a function that imports torch itself draws from it too
        if torch or (torch is None and "torch" in sys.modules):
            self.items.append(_TORCH)
        self.states = [_get_state(g) for g in self.items]

    def restore(self) -> None:
        for g, state in zip(self.items, self.states, strict=True):
            _set_state(g, state)

    def now(self) -> FrozenRandom:
        """The same generators frozen at their current states (where a call has left them)."""
        later = FrozenRandom(legacy=False, torch=False)
        later.items = list(self.items)
        later.states = [_get_state(g) for g in self.items]
        return later

    def moved(self) -> bool:
        """Whether any of the generators has drawn since these states were taken."""
        return not all(_same(_get_state(g), state) for g, state in zip(self.items, self.states, strict=True))

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` with every generator restored before each call."""

        @functools.wraps(fn)
        def frozen(*args: Any, **kwargs: Any) -> Any:
            self.restore()
            return fn(*args, **kwargs)

        return frozen

    def describe(self) -> str:
        names = []
        for g in self.items:
            names.append(
                "numpy's global state"
                if g is _LEGACY
                else "the random module's"
                if g is _PYTHON
                else "torch's default generator"
                if g is _TORCH
                else type(g).__name__
            )
        return ", ".join(names)


def replay_note(fname: str, frozen: FrozenRandom) -> str:
    """The report's note on a random function checked with its streams replayed."""
    return (
        f"{fname} is random; every evaluation replayed the same random stream ({frozen.describe()}), so the check "
        "is of the function with that stream fixed (for example one dropout mask)."
    )


def freeze_rng(
    fn: Callable[..., Any], *generators: Any, legacy: bool = True, torch: bool | None = None
) -> Callable[..., Any]:
    """Return ``fn`` replaying the same random stream at every call.

    Generators found in ``fn``'s closure, globals, bound object or partial arguments are frozen too, in
    addition to those passed.

    Examples
    --------
    >>> import numpy as np, backcheck
    >>> rng = np.random.default_rng(0)
    >>> def dropout_loss(x):
    ...     return float(np.sum(x * (rng.random(x.shape) > 0.5)))
    >>> f = backcheck.freeze_rng(dropout_loss)
    >>> f(np.ones(4)) == f(np.ones(4))
    True
    """
    if not callable(fn):
        raise BadInputError(
            f"freeze_rng takes the function to freeze first, and got {type(fn).__name__} {fn!r}.",
            "pass the function, then any generators it draws from: freeze_rng(f, rng).",
        )
    return FrozenRandom([*generators, *find_generators(fn)], legacy=legacy, torch=torch).wrap(fn)


@contextlib.contextmanager
def kept_random(*reach: Any) -> Iterator[FrozenRandom]:
    """Leave every generator ``reach`` can reach (closures, globals, bound objects, arguments), numpy's global
    state, the ``random`` module's and torch's default generator (when torch is imported) as they were found,
    however the block ends: a check calls the user's function many times, and must not advance their streams."""
    kept = FrozenRandom(find_generators(*reach), legacy=True)
    try:
        yield kept
    finally:
        kept.restore()


def keeps_random(fn: F) -> F:
    """A check entry point that leaves the random streams its arguments reach as it found them (see
    :func:`kept_random`); the generator given as ``seed=`` is the check's own, drawn from as asked."""

    @functools.wraps(fn)
    def kept(*args: Any, **kwargs: Any) -> Any:
        # (kept_random's work, without a generator-based context manager around every check)
        frozen = FrozenRandom(find_generators(*args, *(v for k, v in kwargs.items() if k != "seed")), legacy=True)
        try:
            return fn(*args, **kwargs)
        finally:
            frozen.restore()

    del kept.__wrapped__  # (one function for tools that unwrap, as calls.typed_arguments leaves it)
    return cast(F, kept)


def _attr(obj: Any, name: str, default: Any) -> Any:
    """``getattr`` that takes any exception of a user's ``__getattr__`` or property for a missing attribute."""
    try:
        return getattr(obj, name, default)
    except Exception:
        return default


#: Values that hold no generator (arrays and numbers are most of what a check is given).
_HOLD_NONE = (np.ndarray, np.generic, int, float, complex, str, bytes)


def find_generators(*fns: Any, depth: int = 3) -> list[Any]:
    """Generators a function can reach: closure cells, default arguments, referenced globals, ``self`` attributes,
    partials."""
    found: list[Any] = []
    seen: set[int] = set()

    def visit(obj: Any, level: int) -> None:
        if obj is None or isinstance(obj, _HOLD_NONE) or id(obj) in seen or level > depth:
            return
        seen.add(id(obj))
        if _is_generator(obj):
            found.append(obj)
            return
        if isinstance(obj, functools.partial):
            visit(obj.func, level + 1)
            for a in (*obj.args, *obj.keywords.values()):
                visit(a, level + 1)
            return
        if isinstance(obj, (list, tuple, set)):
            for item in obj:
                visit(item, level + 1)
            return
        if isinstance(obj, dict):
            for item in obj.values():
                visit(item, level + 1)
            return
        func = _attr(obj, "__func__", obj)
        code = _attr(func, "__code__", None)
        if code is not None:
            for cell in _attr(func, "__closure__", None) or ():
                try:
                    visit(cell.cell_contents, level + 1)
                except ValueError:
                    continue
            for default in (
                *(_attr(func, "__defaults__", None) or ()),
                *(_attr(func, "__kwdefaults__", None) or {}).values(),
            ):
                visit(default, level + 1)  # (def f(x, rng=rng): a generator bound as a default)
            glob = _attr(func, "__globals__", {})
            for name in code.co_names:
                if name in glob and not isinstance(glob[name], type(sys)):
                    visit(glob[name], level + 1)
            visit(_attr(obj, "__self__", None), level + 1)
            return
        if _attr(obj, "__dict__", None) is not None and not isinstance(obj, type) and not isinstance(obj, type(sys)):
            if callable(obj) or level > 0:
                for item in vars(obj).values():
                    visit(item, level + 1)

    for fn in fns:
        visit(fn, 0)
    return found


def _same(a: Any, b: Any) -> bool:
    """Two generator states equal (tuples, dicts and arrays of numbers, bytes, tensors)."""
    if isinstance(a, (LegacyState, PythonState)) or isinstance(b, (LegacyState, PythonState)):
        return type(a) is type(b) and a.same(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b, strict=True))
    if isinstance(a, (int, float, str, bytes, type(None))) and isinstance(b, (int, float, str, bytes, type(None))):
        return a == b
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def _is_generator(obj: Any) -> bool:
    if isinstance(obj, (np.random.Generator, np.random.RandomState)):
        return True
    if isinstance(obj, random.Random):
        return not isinstance(obj, random.SystemRandom)  # the OS's entropy has no state to replay
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Generator)


def _import_torch() -> None:
    """torch imported for ``torch=True``, or a typed error where it cannot be."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise BadInputError(
            f"torch=True asks to freeze torch's default generator, but torch cannot be imported ({exc}).",
            "install torch, or leave torch=None (torch's generator is frozen whenever torch is imported).",
        ) from exc


def _get_state(g: Any) -> Any:
    if g is _LEGACY:
        return LegacyState.take()
    if g is _PYTHON:
        return PythonState.take()
    if g is _TORCH:
        return sys.modules["torch"].get_rng_state()
    if isinstance(g, np.random.Generator):
        return g.bit_generator.state
    if isinstance(g, random.Random):
        return g.getstate()
    return g.get_state()


def _set_state(g: Any, state: Any) -> None:
    if g is _LEGACY:
        state.put()
    elif g is _PYTHON:
        state.put()
    elif g is _TORCH:
        sys.modules["torch"].set_rng_state(state)
    elif isinstance(g, np.random.Generator):
        g.bit_generator.state = state
    elif isinstance(g, random.Random):
        g.setstate(state)
    else:
        g.set_state(state)


# -- numpy's global state -----------------------------------------------------------------------------------
# ``np.random.get_state()`` and ``set_state()`` copy MT19937's 624-word key one word at a time (about 30 us
# each), as much as a tiny check costs in all. The key and position are read and written whole instead, at the
# address the documented ``BitGenerator.ctypes`` interface gives; what the legacy RandomState keeps beside
# them (the second normal of its last pair, ``has_gauss`` and ``gauss``) has no such interface, and is told
# by one draw of a normal: it comes from the kept value without touching the key, or else from a new pair.
# (With no normal kept, numpy holds ``gauss`` at 0.0, and so does a restored state; only a state set by hand
# with another value there would read back different, with the same draws.)

#: MT19937's state as its C struct lays it out: 624 32-bit words of key, then the position (a C int).
MT_WORDS = 624
MT_BYTES = 4 * MT_WORDS + ctypes.sizeof(ctypes.c_int)


class LegacyState:
    """numpy's global RandomState, frozen: its bit generator and, for an MT19937 that keeps no normal (the
    usual case), the raw bytes of its key and position (``raw``), else the state as ``get_state`` gives it
    (``full``). :meth:`put` brings back exactly that state, the kept normal included."""

    def __init__(self, bit_generator: Any, raw: bytes | None, full: Any) -> None:
        self.bit_generator, self.raw, self.full = bit_generator, raw, full

    @classmethod
    def take(cls) -> LegacyState:
        bg = _global_bit_generator()
        address = _raw_address(bg)
        if address is None:
            return cls(bg, None, np.random.get_state(legacy=False))
        raw = ctypes.string_at(address, MT_BYTES)
        kept = _draw_normal()  # the kept normal if there is one, else the first of a new pair
        if ctypes.string_at(address, MT_BYTES) == raw:  # it was kept (no draw): put it back as it was
            full = {"bit_generator": "MT19937", "state": _mt_state(raw), "has_gauss": 1, "gauss": kept}
            np.random.set_state(full)
            return cls(bg, None, full)
        _forget_normal(address, raw)
        return cls(bg, raw, None)

    def put(self) -> None:
        if _global_bit_generator() is not self.bit_generator:  # the function swapped numpy's generator
            np.random.mtrand.set_bit_generator(self.bit_generator)
        if self.raw is None:
            np.random.set_state(self.full)
            return
        address = self.bit_generator.ctypes.state_address
        ctypes.memmove(address, self.raw, MT_BYTES)
        _draw_normal()  # uses up a normal kept by the function's draws, or draws a pair (and keeps one)
        if ctypes.string_at(address, MT_BYTES) != self.raw:
            _forget_normal(address, self.raw)

    def same(self, other: LegacyState) -> bool:
        if self.bit_generator is not other.bit_generator or (self.raw is None) != (other.raw is None):
            return False
        return self.raw == other.raw if self.raw is not None else _same(self.full, other.full)


def _draw_normal() -> float:
    """One normal from numpy's global RandomState itself (``np.random.standard_normal`` may be mocked)."""
    return float(np.random.mtrand._rand.standard_normal())


def _forget_normal(address: int, raw: bytes) -> None:
    """From the state just after a new pair was drawn from ``raw`` (one normal of it kept): back to ``raw``, no
    normal kept. Taking the kept normal touches no key."""
    ctypes.memmove(address, raw, MT_BYTES)
    _draw_normal()


def _mt_state(raw: bytes) -> dict[str, Any]:
    """MT19937's ``state['state']`` from its raw bytes."""
    key = np.frombuffer(raw, dtype=np.uint32, count=MT_WORDS).copy()
    return {"key": key, "pos": int(np.frombuffer(raw, dtype=np.intc, count=1, offset=4 * MT_WORDS)[0])}


#: Whether MT19937's raw state is laid out as assumed (told once, against its documented ``state``).
_raw_layout: list[bool] = []


def _global_bit_generator() -> Any:
    """The bit generator of numpy's global state (None before numpy 1.25, which cannot tell it)."""
    get = getattr(np.random, "get_bit_generator", None)
    return None if get is None else get()


def _raw_address(bg: Any) -> int | None:
    """The address of ``bg``'s raw state when it is an MT19937 laid out as :data:`MT_BYTES` says, else None."""
    if type(bg) is not np.random.MT19937:
        return None
    address = int(bg.ctypes.state_address)
    if not _raw_layout:
        state = bg.state["state"]
        expected = np.asarray(state["key"], dtype=np.uint32).tobytes() + np.intc(state["pos"]).tobytes()
        # (and the global RandomState the kept normal is told by, a private name numpy may one day drop)
        legacy = getattr(getattr(np.random, "mtrand", None), "_rand", None)
        _raw_layout.append(ctypes.string_at(address, MT_BYTES) == expected and hasattr(legacy, "standard_normal"))
    return address if _raw_layout[0] else None


# -- the random module's global generator --------------------------------------------------------------------
# ``random.getstate()`` builds a tuple of 625 Python ints (about 8 us, a few percent of a tiny check), and
# ``setstate`` reads them back. CPython's generator keeps its MT19937 state in the object itself, after the
# object header: the position (a C int), then the 624-word key; both are read and written whole, where that
# layout is confirmed once against ``getstate``. What the Python class keeps beside them (``gauss_next``, the
# second normal of ``random.gauss``'s last pair) is an attribute, kept as it is.

#: Bytes of CPython's generator state: the position, then the key.
PY_MT_BYTES = ctypes.sizeof(ctypes.c_int) + 4 * MT_WORDS


class PythonState:
    """The random module's global generator, frozen: its instance, the raw bytes of its state where the layout
    is confirmed (``raw``, else ``full``: ``getstate``'s tuple) and its kept normal."""

    def __init__(self, inst: random.Random, raw: bytes | None, full: Any, gauss: Any) -> None:
        self.inst, self.raw, self.full, self.gauss = inst, raw, full, gauss

    @classmethod
    def take(cls) -> PythonState:
        inst = random._inst  # type: ignore[attr-defined]
        address = _py_raw_address(inst)
        if address is None:
            return cls(inst, None, inst.getstate(), None)
        return cls(inst, ctypes.string_at(address, PY_MT_BYTES), None, inst.__dict__.get("gauss_next"))

    def put(self) -> None:
        if self.raw is None:
            self.inst.setstate(self.full)
            return
        address = _py_raw_address(self.inst)
        assert address is not None
        ctypes.memmove(address, self.raw, PY_MT_BYTES)
        self.inst.gauss_next = self.gauss  # type: ignore[attr-defined]  # (an attribute random.Random keeps)

    def same(self, other: PythonState) -> bool:
        if self.inst is not other.inst or (self.raw is None) != (other.raw is None):
            return False
        if self.raw is None:
            return _same(self.full, other.full)
        return self.raw == other.raw and self.gauss == other.gauss


#: The object header's size, where CPython's generator is laid out as :class:`PythonState` reads it (told once).
_py_layout: list[int | None] = []


def _py_raw_address(inst: random.Random) -> int | None:
    """The address of ``inst``'s position and key when its type lays them out as confirmed, else None."""
    if not _py_layout:
        _py_layout.append(_py_header(inst))
    header = _py_layout[0]
    return None if header is None or type(inst) is not random.Random else id(inst) + header


def _py_header(inst: random.Random) -> int | None:
    """Where CPython's generator keeps its position and key, after the object header: confirmed against
    ``getstate`` on a private generator (two different states), or None (another Python, another layout)."""
    if sys.implementation.name != "cpython" or type(inst) is not random.Random:
        return None
    header = object.__basicsize__
    probe = random.Random(12345)
    for _ in range(2):
        _version, words, _gauss = probe.getstate()
        expected = np.intc(words[-1]).tobytes() + np.asarray(words[:-1], dtype=np.uint32).tobytes()
        if len(words) != MT_WORDS + 1 or ctypes.string_at(id(probe) + header, PY_MT_BYTES) != expected:
            return None
        probe.random()
    return header


#: Two calls at the same point that differ by at most this many units of the output's last place at its size
#: jitter (see :func:`jitter`); beyond, the function is random.
JITTER_UNITS = 256.0


def jitter(fname: str, values: tuple[float, float], scale: float, dtype: Any, projected: bool = False) -> float:
    """How far two calls of ``fname`` at the same point differed (0 if not at all), where that is within a few
    hundred units of the output's last place at its ``scale``: a pivoting or threaded kernel (torch's lstsq with
    gelsy returned 0.0 and then 2.2e-15) jitters, it is not random. Beyond that, :class:`NondeterministicError`.
    ``projected``: the values are the outputs' change from the first call weighed by dout (a layer's), not what
    ``fname`` returned."""
    phi, again = values
    if phi == again or (phi != phi and again != again):
        return 0.0
    kind = np.dtype(dtype) if np.dtype(dtype).kind == "f" else np.dtype(np.float64)
    off = abs(phi - again)
    if off <= JITTER_UNITS * float(np.finfo(kind).eps) * scale:
        return off
    said = (
        f"{fname}'s outputs changed between two calls at the same input (their change from the first call, "
        f"weighed by dout: {phi!r}, then {again!r})"
        if projected
        else f"{fname} returned {phi!r} and then {again!r} for the same input"
    )
    raise NondeterministicError(
        f"{said}: it is random (dropout, sampling, an unseeded generator) or keeps state that changes with every "
        "call (a call counter, a running statistic, a cache), so finite differences would measure that, not a "
        "derivative.",
        "fix the randomness: pass a seeded generator or a fixed dropout mask as an input, or re-seed inside the "
        "function; and leave state that changes with each call out of the checked computation (a reset=, or "
        "eval mode).",
    )
