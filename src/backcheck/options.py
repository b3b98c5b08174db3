"""Every knob a user can set on a check, validated once at the entry and passed whole.

An :class:`Options` is frozen: a frontend builds it from its keyword arguments with :meth:`Options.make`,
which raises :class:`BadInputError` naming the option, and hands it to :func:`backcheck.run.run` unchanged.
Randomness in a check (sampled elements, random directions, a default ``dout``) is drawn from named streams
of one ``np.random.SeedSequence``, so streams never overlap and one seed reproduces the whole check.
"""

from __future__ import annotations

import functools
import math
import zlib
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from backcheck.errors import BadInputError

STRATEGIES = ("full", "sparse", "projected", "auto")
RANDOM_MODES = ("auto", "freeze", "error")


def _hint_choices(values: tuple[str, ...]) -> str:
    return "use one of " + ", ".join(repr(v) for v in values) + "."


def _tolerance(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise BadInputError(f"{name}={value!r} is not a number.", f"pass a non-negative float, e.g. {name}=1e-6.")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise BadInputError(f"{name}={value!r} must be finite and non-negative.", f"pass e.g. {name}=1e-6.")
    return v


def _floor(value: Any) -> float | None:
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if number and not 0 < value < 1:  # (NaN too; -1 and 0 get the same rule)
        raise BadInputError(f"floor={value!r} must lie between 0 and 1 (a relative error).", "pass e.g. floor=1e-8.")
    return _tolerance("floor", value)  # (None, or what is no number: refused there)


def _positive_int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) <= 0:
        raise BadInputError(f"{name}={value!r} must be a positive integer.", f"pass e.g. {name}=100.")
    return int(value)


def _step(value: Any) -> Any:
    if value is None or isinstance(value, dict | list | tuple):
        return value  # a tree of steps is checked against the parameters' structure when packed
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise BadInputError(f"step={value!r} is not a number or an array of numbers.", "pass a positive float.")
    if arr.size == 0 or not bool(np.all(np.isfinite(arr))) or not bool(np.all(arr > 0)):
        raise BadInputError(
            f"step={value!r} must be positive and finite (every element).",
            "pass a positive float such as step=1e-6, or leave it out to choose steps per element.",
        )
    return float(arr) if arr.ndim == 0 else arr.astype(np.float64)


def _fraction(name: str, value: Any, open_top: bool) -> Any:
    """A number in (0, 1) (``open_top``) or a positive number, or None."""
    if value is None and not open_top:
        return None
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = math.isfinite(v) and v > 0 and (v < 1 or not open_top)
    if not ok:
        example = "confidence=0.999" if open_top else "detect=1e-6"
        bounds = "between 0 and 1 (exclusive)" if open_top else "a positive number"
        raise BadInputError(f"{name}={value!r} must be {bounds}.", f"pass {example}, for example.")
    return float(value)


def _seed(value: Any) -> np.random.SeedSequence:
    if isinstance(value, np.random.SeedSequence):
        return value
    if value is None:
        return np.random.SeedSequence()
    if isinstance(value, np.random.Generator):
        return np.random.SeedSequence(int(value.integers(0, 2**63)))
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 0:
        raise BadInputError(
            f"seed={value!r} is not a non-negative int, None or a numpy Generator.",
            "pass seed=0 for a reproducible check, or seed=None for fresh entropy.",
        )
    return _seed_of(int(value))


@functools.lru_cache(maxsize=256)
def _seed_of(value: int) -> np.random.SeedSequence:
    """The ``SeedSequence`` of an int seed, made once per seed: a check reads only its entropy and spawn key
    (:meth:`Options.rng` derives new sequences from them; nothing spawns from the shared one)."""
    return np.random.SeedSequence(value)


@dataclass(frozen=True)
class Options:
    """How a check runs. Build it with :meth:`make`, which validates every field.

    Attributes mirror the keyword arguments of :func:`backcheck.check`; ``seed`` is kept as the
    ``SeedSequence`` every random stream of the check derives from.
    """

    strategy: str | None = None
    samples: int | None = None
    atol: float | None = None
    rtol: float | None = None
    step: Any = None
    seed: np.random.SeedSequence = field(default_factory=lambda: np.random.SeedSequence(0))
    upcast: bool | None = None
    curves: bool = False
    vectorized: bool = False
    max_batch_bytes: int | None = None  # None: each batched path picks its own (backends.BATCH_BYTES)
    executor: Any = None
    progress: bool | None = None
    random: str = "auto"
    #: refuse a gradient in another float dtype than its parameter instead of judging it at the coarser one
    strict_dtype: bool = False
    #: the detection floor asked for: an error of this fraction of an element's gradient (or of its tensor's
    #: typical size) must fail; elements whose bound is wider are refined with sharp numerics
    floor: float | None = None
    #: random directions ('projected', 'auto'): the RMS error, relative to the gradient, they must catch
    #: (None: ten times what one direction resolves) and the confidence to catch it with
    detect: float | None = None
    confidence: float = 0.999

    @classmethod
    def make(cls, **kwargs: Any) -> Options:
        """Validate user options; unknown names and bad values raise :class:`BadInputError` naming the option.

        Options given as plain values alone (None, bools, ints, floats, strings: every default) are validated
        once per set of values and shared (they are frozen); ``seed=None`` asks for fresh entropy every time.
        """
        if kwargs.get("seed", 0) is not None and all(type(v) in _PLAIN for v in kwargs.values()):
            return _made(**kwargs)
        return cls._validated(**kwargs)

    @classmethod
    def _validated(cls, **kwargs: Any) -> Options:
        unknown = sorted(kwargs.keys() - cls.__dataclass_fields__.keys())
        if unknown:
            raise BadInputError(f"unknown option(s) {unknown}.", f"the options are {sorted(cls.__dataclass_fields__)}.")
        strategy = kwargs.get("strategy")
        if strategy is not None and not (isinstance(strategy, str) and strategy in STRATEGIES):
            raise BadInputError(f"unknown strategy={strategy!r}.", _hint_choices(STRATEGIES))
        random = kwargs.get("random", "auto")
        if not (isinstance(random, str) and random in RANDOM_MODES):
            raise BadInputError(f"random={random!r} is not one of {list(RANDOM_MODES)}.", "use random='auto'.")
        max_bytes = _positive_int("max_batch_bytes", kwargs.get("max_batch_bytes"))
        for flag in ("curves", "vectorized", "strict_dtype"):
            if not isinstance(kwargs.get(flag, False), (bool, np.bool_)):
                raise BadInputError(f"{flag}={kwargs[flag]!r} must be True or False.", f"pass {flag}=True.")
        for flag in ("upcast", "progress"):
            if kwargs.get(flag) is not None and not isinstance(kwargs[flag], (bool, np.bool_)):
                raise BadInputError(f"{flag}={kwargs[flag]!r} must be True, False or None.", f"pass {flag}=True.")
        executor = kwargs.get("executor")
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise BadInputError(
                f"executor={executor!r} has no submit method.",
                "pass a concurrent.futures.Executor or a dask.distributed.Client.",
            )
        floor = _floor(kwargs.get("floor"))
        return cls(
            # a floor is asked of every element: random directions state an RMS detection size, not that
            strategy="full" if strategy is None and floor is not None else strategy,
            samples=_positive_int("samples", kwargs.get("samples")),
            atol=_tolerance("atol", kwargs.get("atol")),
            rtol=_tolerance("rtol", kwargs.get("rtol")),
            step=_step(kwargs.get("step")),
            seed=_seed(kwargs.get("seed", 0)),
            upcast=kwargs.get("upcast"),
            curves=bool(kwargs.get("curves", False)),
            vectorized=bool(kwargs.get("vectorized", False)),
            max_batch_bytes=max_bytes,
            executor=executor,
            progress=kwargs.get("progress"),
            random=random,
            strict_dtype=bool(kwargs.get("strict_dtype", False)),
            floor=floor,
            detect=_fraction("detect", kwargs.get("detect"), open_top=False),
            confidence=_fraction("confidence", kwargs.get("confidence", 0.999), open_top=True),
        )

    @classmethod
    def pick(cls, values: dict[str, Any]) -> Options:
        """:meth:`make` from an entry point's own keywords (``Options.pick(locals())``): the names that are
        options are taken, the others (the function, its inputs) left alone."""
        return cls.make(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})

    def rng(self, stream: str) -> np.random.Generator:
        """A generator for one named use of randomness (e.g. ``'sample'``, ``'dout'``, ``'noise'``).

        Streams are children of the check's seed keyed by their name, so they never overlap and adding one
        never shifts another.
        """
        key = zlib.crc32(stream.encode())
        seq = np.random.SeedSequence(self.seed.entropy, spawn_key=(*self.seed.spawn_key, key))
        return np.random.default_rng(seq)

    def lazy_rng(self, stream: str) -> Any:
        """:meth:`rng`, drawn up only when first used (a full check on a smooth function never needs it)."""
        return _LazyGenerator(lambda: self.rng(stream))

    @property
    def seed_value(self) -> Any:
        """The seed as the user can pass it again to reproduce the check."""
        return self.seed.entropy

    def with_(self, **changes: Any) -> Options:
        return replace(self, **changes)


#: Types of option values whose validated :class:`Options` are kept (see :meth:`Options.make`).
_PLAIN = (type(None), bool, int, float, str)


@functools.lru_cache(maxsize=64, typed=True)  # (typed: samples=True is refused, samples=1 is not)
def _made(**kwargs: Any) -> Options:
    return Options._validated(**kwargs)


class _LazyGenerator:
    """A numpy Generator made on first use: its attributes are the Generator's."""

    def __init__(self, make: Any) -> None:
        self._make, self._gen = make, None

    def __getattr__(self, name: str) -> Any:
        if self._gen is None:
            self._gen = self._make()
        return getattr(self._gen, name)


def seed_int(rng: np.random.Generator) -> int:
    """An int seed drawn from ``rng`` (for code that takes an int)."""
    return int(rng.integers(0, 2**31 - 1))
